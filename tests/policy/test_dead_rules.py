"""Rules that match every request, or can never change a decision.

Each was a valid bundle without a word: a directive whose conditions were
deleted by mistake refused every request of every customer from its start
instant; an ``unless`` that holds whenever the ``when`` does made a directive
that never refuses anyone; and a licence whose window ends before the
directive starts lifts nothing, so the licensed customer is cut at the
directive's start while the bundle reads as if the licence were honoured.
"""

from __future__ import annotations

from pathlib import Path

from gateway.policy.loader import load_dir
from tests.policy.conftest import MINIMAL, POLICIES, write_bundle

ENTITLEMENT = """\
  - id: entitlement
    effect: allow
    when: {model_allowed_for_tier: true}
"""


def warnings_of(tmp_path: Path, rules: str) -> list[str]:
    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"rules.yaml": "rules:\n" + rules}))
    result = load_dir(d)
    assert result.ok, result.errors
    return [str(w) for w in result.warnings]


def test_the_default_bundle_has_no_dead_or_catch_all_rule() -> None:
    assert [str(w) for w in load_dir(POLICIES).warnings] == []


def test_a_deny_rule_with_an_empty_when_is_a_warning(tmp_path: Path) -> None:
    rules = """\
  - id: directive-everything
    effect: deny
    when: {}
    effective: {from: "2026-11-29T00:00:00Z"}
""" + ENTITLEMENT
    assert warnings_of(tmp_path, rules) == [
        "rules.yaml:4 rules[0].when: matches every request: this deny rule refuses every "
        "customer, model and capability while it is in force"
    ]


def test_an_allow_rule_with_an_empty_when_is_a_warning(tmp_path: Path) -> None:
    rules = "  - id: open-bar\n    effect: allow\n    when: {}\n"
    assert warnings_of(tmp_path, rules) == [
        "rules.yaml:4 rules[0].when: matches every request: this allow rule serves every "
        "model to every tier that no deny rule refuses, whatever the tiers' entitlements"
    ]


def test_an_unless_that_holds_whenever_the_when_does_is_a_warning(tmp_path: Path) -> None:
    rules = """\
  - id: directive-cn-small
    effect: deny
    when: {model_in: [small], citizenship_in: [CN]}
    unless: {model_in: [small, big]}
""" + ENTITLEMENT
    assert warnings_of(tmp_path, rules) == [
        "rules.yaml:5 rules[0].unless: holds whenever 'when' does (model_in): "
        "the rule can never match"
    ]


def test_an_unless_narrower_than_the_when_is_fine(tmp_path: Path) -> None:
    rules = """\
  - id: directive-cn-small
    effect: deny
    when: {model_in: [small, big], citizenship_in: [CN]}
    unless: {model_in: [small], us_person: true}
""" + ENTITLEMENT
    assert warnings_of(tmp_path, rules) == []


def test_a_licence_whose_window_ends_before_the_directive_starts_is_a_warning(
    tmp_path: Path,
) -> None:
    rules = """\
  - id: directive-cn-small
    effect: deny
    when: {model_in: [small], citizenship_in: [CN]}
    effective: {from: "2026-11-29T00:00:00Z"}
  - id: licence-cn-lab
    effect: exempt
    exempts: [directive-cn-small]
    when: {customer_in: [cn-lab]}
    effective: {until: "2025-11-29T00:00:00Z"}
""" + ENTITLEMENT
    assert warnings_of(tmp_path, rules) == [
        "rules.yaml:8 rules[1].exempts[0]: can never lift 'directive-cn-small': this rule "
        "is in force until 2025-11-29T00:00:00Z and 'directive-cn-small' from "
        "2026-11-29T00:00:00Z, so their windows do not overlap"
    ]


def test_a_licence_overlapping_the_directive_is_fine(tmp_path: Path) -> None:
    rules = """\
  - id: directive-cn-small
    effect: deny
    when: {model_in: [small], citizenship_in: [CN]}
    effective: {from: "2026-11-29T00:00:00Z"}
  - id: licence-cn-lab
    effect: exempt
    exempts: [directive-cn-small]
    when: {customer_in: [cn-lab]}
    effective: {until: "2027-11-29T00:00:00Z"}
""" + ENTITLEMENT
    assert warnings_of(tmp_path, rules) == []


def test_an_error_in_the_directive_does_not_make_its_licence_name_an_unknown_rule(
    tmp_path: Path,
) -> None:
    # The licence names the directive rightly; only the directive's own
    # error is real. "unknown rule id" sent the officer hunting a typo.
    rules = """\
  - id: directive-cn-small
    effect: deny
    when: {model_in: [small], citizenship_in: [CN]}
    capability_in: [agentic]
  - id: licence-cn-lab
    effect: exempt
    exempts: [directive-cn-small]
    when: {customer_in: [cn-lab]}
""" + ENTITLEMENT
    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"rules.yaml": "rules:\n" + rules}))
    assert [str(e) for e in load_dir(d).errors] == [
        "rules.yaml:5 rules[0].capability_in: unknown key ('capability_in' is a condition: "
        "indent it under 'when' or 'unless')"
    ]


def test_an_allow_naming_customers_beside_a_deny_says_allows_lift_nothing(
    tmp_path: Path,
) -> None:
    # Written by someone used to first-match lists (firewalls, LiteLLM's
    # allow-lists): the "exception" above the directive does nothing, and the
    # licensed customer is refused with everyone else.
    rules = """\
  - id: allow-cn-lab
    effect: allow
    when: {customer_in: [cn-lab]}
  - id: directive-cn-small
    effect: deny
    when: {model_in: [small], citizenship_in: [CN]}
""" + ENTITLEMENT
    assert warnings_of(tmp_path, rules) == [
        "rules.yaml:4 rules[0].when.customer_in: an allow lifts no deny rule (any matching "
        "deny wins, whatever the order): to except these customers from a deny rule, write "
        "effect: exempt with exempts: [<its id>]"
    ]


def test_validate_says_a_rule_that_has_ended_decides_nothing(tmp_path: Path) -> None:
    # A directive with its year mistyped (2025 for 2027) loads as valid and
    # ends before it is shipped; "(ended now)" alone read as a state, not as
    # "this rule will never refuse anyone".
    from typer.testing import CliRunner

    from gateway.cli.main import app

    rules = """\
  - id: directive-cn-small
    effect: deny
    when: {model_in: [small], citizenship_in: [CN]}
    effective: {from: "2025-11-29T00:00:00Z", until: "2025-12-29T00:00:00Z"}
""" + ENTITLEMENT
    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"rules.yaml": "rules:\n" + rules}))
    result = CliRunner().invoke(app, ["policy", "validate", str(d)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert (
        "timed: directive-cn-small from 2025-11-29T00:00:00Z until 2025-12-29T00:00:00Z "
        "(ended now: it decides nothing any more)" in result.output
    ), result.output
