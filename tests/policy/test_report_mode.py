"""Report-mode ("shadow") rules: matched and listed, never deciding.

The engine side: a report rule is evaluated like an enforced one (conditions,
guards, effective dates, model index) but only ever lands in
``Decision.report_rule_ids``; the loader side: same validation, a version that
does not move for bundles without report rules, the published schema.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.geo.origin import Origin
from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide, visible_models
from gateway.policy.loader import load_bundle
from gateway.policy.ruleindex import CompiledRule, RuleIndex
from gateway.policy.schema import json_schema
from tests.policy.conftest import AFTER_DIRECTIVE, MINIMAL, POLICIES, facts, principal, write_bundle

Build = Callable[..., CompiledBundle]
DE_ENT = dict(tier="enterprise", kyc_level="kyb_verified", citizenships={"DE"}, residence="DE")
RULES = """\
rules:
  - {id: entitled, effect: allow, when: {model_allowed_for_tier: true}}
  - {id: no-ir, effect: deny, when: {origin_in: [IR]}}
  - id: draft-big-de
    effect: deny
    mode: report
    when: {model_in: [big], citizenship_in: [DE]}
    reason: Draft directive.
"""
NOW = datetime(2026, 6, 14, tzinfo=UTC)


def test_a_matching_report_deny_leaves_the_allow_and_is_listed(make_bundle: Build) -> None:
    bundle = make_bundle(RULES)
    d = decide(principal(**DE_ENT), facts("big", "DE"), bundle, NOW)
    assert d.allowed and d.rule_ids == ("entitled",) and d.reasons == ("Policy rule entitled.",)
    assert d.report_rule_ids == ("draft-big-de",) and d.report_reasons == ("Draft directive.",)
    assert d.quota is not None  # metered as any allow
    # Not matching (another model, another citizenship): nothing listed.
    assert decide(principal(**DE_ENT), facts("small", "DE"), bundle, NOW).report_rule_ids == ()
    fr = dict(DE_ENT, citizenships={"FR"})
    assert decide(principal(**fr), facts("big", "DE"), bundle, NOW).report_rule_ids == ()


def test_an_enforced_deny_still_wins_and_the_report_match_is_kept(make_bundle: Build) -> None:
    d = decide(principal(**DE_ENT), facts("big", "IR"), make_bundle(RULES), NOW)
    assert not d.allowed and d.rule_ids == ("no-ir",)
    assert d.report_rule_ids == ("draft-big-de",)


def test_a_report_allow_grants_nothing(make_bundle: Build) -> None:
    bundle = make_bundle("""\
rules:
  - {id: draft-open-big, effect: allow, mode: report, when: {model_in: [big]}}
""")
    d = decide(principal(tier="public"), facts("big", "US"), bundle, NOW)
    assert not d.allowed and d.rule_ids == ("default-deny",)
    assert d.report_rule_ids == ("draft-open-big",)
    assert visible_models(principal(tier="public"), bundle, NOW, Origin(None, "US")) == []


def test_effective_dates_apply_to_report_rules(make_bundle: Build) -> None:
    bundle = make_bundle(RULES.replace(
        "    reason: Draft directive.\n",
        "    reason: Draft directive.\n"
        '    effective: {from: "2026-07-01T00:00:00Z", until: "2026-08-01T00:00:00Z"}\n',
    ))
    p, f = principal(**DE_ENT), facts("big", "DE")
    for at, listed in (
        (datetime(2026, 6, 30, 23, 59, tzinfo=UTC), ()),
        (datetime(2026, 7, 1, tzinfo=UTC), ("draft-big-de",)),
        (datetime(2026, 8, 1, tzinfo=UTC), ()),  # until is exclusive
    ):
        d = decide(p, f, bundle, at)
        assert d.allowed and d.report_rule_ids == listed, at


def test_a_report_deny_hides_no_model(make_bundle: Build) -> None:
    bundle = make_bundle(RULES)
    names = visible_models(principal(**DE_ENT), bundle, NOW, Origin(None, "DE"))
    assert names == ["small", "big"]


def test_decisions_before_the_rules_list_no_report_matches(make_bundle: Build) -> None:
    suspended = principal(**dict(DE_ENT, status="suspended"))
    d = decide(suspended, facts("big", "DE"), make_bundle(RULES), NOW)
    assert d.rule_ids == ("customer-suspended",) and d.report_rule_ids == ()


def test_report_rules_are_indexed_by_guard_and_model(make_bundle: Build) -> None:
    bundle = make_bundle(RULES)
    assert bundle.rules_for("small").reports is None  # filed under big only
    reports = bundle.rules_for("big").reports
    assert reports is not None and set(reports.buckets["citizenship"]) == {"DE"}
    assert bundle.report_rule_ids() == frozenset({"draft-big-de"})
    plain = make_bundle(RULES.split("  - id: draft-big-de")[0])
    assert all(rs.reports is None for rs in (*plain.by_model.values(), plain.common))


def test_report_rules_never_change_a_decision(default_bundle: CompiledBundle,
                                              tmp_path: Path) -> None:
    """Every rule of the default bundle duplicated in report mode: same decisions."""
    rules = (POLICIES / "rules.yaml").read_text()
    shadow = rules.replace("  - id: ", "  - mode: report\n    id: shadow-")
    copy = tmp_path / "b"
    write_bundle(copy, {p.name: p.read_text() for p in POLICIES.glob("*.yaml")})
    (copy / "shadow.yaml").write_text(shadow)
    both = load_bundle(copy)
    assert len(both.report_rule_ids()) == len(default_bundle.rules) > 0
    people = [dict(DE_ENT), dict(tier="government", kyc_level="government_cleared",
                                 citizenships={"US"}, residence="US"),
              dict(tier="public", citizenships={"IR"}, residence="IR")]
    listed = 0
    for who, model, origin in itertools.product(
        people, ("haiku-lite", "fable-5", "mythos-5", "nope"), ("US", "DE", "IR", None)
    ):
        p, f = principal(**who), facts(model, origin)
        a, b = decide(p, f, default_bundle, AFTER_DIRECTIVE), decide(p, f, both, AFTER_DIRECTIVE)
        assert (a.allowed, a.rule_ids, a.reasons, a.quota) == (b.allowed, b.rule_ids, b.reasons,
                                                               b.quota)
        # The shadow copies match exactly where their originals do (decided or not).
        assert set(b.report_rule_ids) >= {f"shadow-{r}" for r in a.rule_ids
                                          if r in {x.id for x in default_bundle.rules}}
        listed += len(b.report_rule_ids)
    assert listed > 0


def test_a_report_rule_that_fails_to_evaluate_changes_nothing(
    make_bundle: Build, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = make_bundle(RULES)

    def broken(ctx: object) -> bool:
        raise ZeroDivisionError("bug in a condition")

    rule = CompiledRule("draft-broken", "deny", 9, broken, "r", None, None, None, mode="report")
    big = dataclasses.replace(bundle.rules_for("big"), reports=RuleIndex.build([rule]))
    broken_bundle = dataclasses.replace(bundle, by_model={"small": bundle.by_model["small"],
                                                          "big": big})
    with caplog.at_level(logging.ERROR, "gateway.policy"):
        d = decide(principal(**DE_ENT), facts("big", "DE"), broken_bundle, NOW)
    assert d.allowed and d.rule_ids == ("entitled",)
    assert d.report_rule_ids == ("evaluation-error",)
    assert "report-mode rule evaluation failed" in caplog.text


def test_mode_is_in_the_version_only_when_report(tmp_path: Path) -> None:
    rules = ("rules:\n  - {id: allow-small, effect: allow, when: {model_in: [small]}}\n"
             "  - {id: no-ir, effect: deny, when: {origin_in: [IR]}}\n")
    # Computed before rules had a mode: existing bundles keep their version, so
    # recorded decisions still name the bundle in force after the upgrade.
    before = "d6374fee245cf3c57890d3e60bd91649d2e9f5734b2b36692ca11449974b5212"
    plain = load_bundle(write_bundle(tmp_path / "a", dict(MINIMAL, **{"rules.yaml": rules})))
    explicit = load_bundle(write_bundle(tmp_path / "b", dict(MINIMAL, **{
        "rules.yaml": rules.replace("effect: deny,", "effect: deny, mode: enforce,")})))
    report = load_bundle(write_bundle(tmp_path / "c", dict(MINIMAL, **{
        "rules.yaml": rules.replace("effect: deny,", "effect: deny, mode: report,")})))
    assert plain.version == explicit.version == before
    assert report.version != before


def test_published_schema_has_mode() -> None:
    rule = json_schema()["$defs"]["Rule"]["properties"]["mode"]
    assert rule["enum"] == ["enforce", "report"] and rule["default"] == "enforce"


def test_rule_ids_fit_the_audit_rule_index(tmp_path: Path) -> None:
    """``report:<id>`` must fit the side index's 128 characters (PostgreSQL enforces it)."""
    from gateway.policy.loader import load_dir

    long_id = "r" * 121
    rules = f"rules:\n  - {{id: {long_id}, effect: deny, mode: report, when: {{}}}}\n"
    result = load_dir(write_bundle(tmp_path / "b", dict(MINIMAL, **{"rules.yaml": rules})))
    assert [str(e) for e in result.errors] == [
        "rules.yaml:2 rules[0].id: String should have at most 120 characters"]
    ok = rules.replace(long_id, "r" * 120)
    assert load_dir(write_bundle(tmp_path / "c", dict(MINIMAL, **{"rules.yaml": ok}))).ok
