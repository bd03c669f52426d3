"""``effect: exempt`` rules: a named exception (a licence) to a deny rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide, visible_models
from gateway.policy.loader import load_dir
from tests.policy.conftest import MINIMAL, facts, principal, write_bundle

Build = Callable[..., CompiledBundle]
NOW = datetime(2026, 12, 1, tzinfo=UTC)
RULES = """\
rules:
  - {id: directive, effect: deny, when: {citizenship_in: [ZA]}, reason: Directive.}
  - {id: other-deny, effect: deny, when: {origin_in: [CU]}}
  - id: licence-0042
    effect: exempt
    exempts: [directive]
    when: {customer_in: [c-licensed]}
    effective: {until: "2026-12-31T00:00:00Z"}
    reason: Served under licence 0042.
  - {id: entitled, effect: allow, when: {model_allowed_for_tier: true}}
"""
ENT = dict(tier="enterprise", kyc_level="kyb_verified", citizenships={"ZA"}, residence="DE")


def test_an_exemption_lifts_only_its_rule_for_its_customer_and_is_listed(
    make_bundle: Build,
) -> None:
    bundle = make_bundle(RULES)
    licensed = principal(customer_id="c-licensed", **ENT)
    served = decide(licensed, facts(model="big", country="DE"), bundle, NOW)
    assert served.allowed and served.rule_ids == ("licence-0042", "entitled")
    assert served.reasons[0] == "Served under licence 0042."
    other = decide(principal(customer_id="c-other", **ENT), facts("big", "DE"), bundle, NOW)
    assert not other.allowed and other.rule_ids == ("directive",)
    # Another deny still refuses the licensed customer: the licence lifts one rule.
    from_cuba = decide(licensed, facts(model="big", country="CU"), bundle, NOW)
    assert not from_cuba.allowed and from_cuba.rule_ids == ("other-deny",)
    # After its `until`, the licence no longer applies.
    next_year = datetime(2027, 1, 1, tzinfo=UTC)
    later = decide(licensed, facts(model="big", country="DE"), bundle, next_year)
    assert not later.allowed and later.rule_ids == ("directive",)
    assert "big" in visible_models(licensed, bundle, NOW, facts(country="DE").origin)


def test_an_exemption_grants_nothing_by_itself(make_bundle: Build) -> None:
    bundle = make_bundle(RULES.replace("model_allowed_for_tier: true", "model_in: [small]"))
    d = decide(principal(customer_id="c-licensed", **ENT), facts("big", "DE"), bundle, NOW)
    assert not d.allowed and d.rule_ids == ("default-deny",)
    # And no deny matched: the exemption is not looked at, nor listed.
    p = principal(customer_id="c-licensed", **dict(ENT, citizenships={"DE"}))
    assert decide(p, facts("small", "DE"), bundle, NOW).rule_ids == ("entitled",)


def test_exempts_is_checked_at_load_and_absent_exempts_keep_the_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def load(rules: str, name: str):  # type: ignore[no-untyped-def]
        return load_dir(write_bundle(tmp_path / name, dict(MINIMAL, **{"rules.yaml": rules})))

    bad = load(
        RULES.replace("exempts: [directive]", "exempts: [directiv, entitled]")
        + "  - {id: x, effect: allow, exempts: [directive], when: {}}\n"
        + "  - {id: y, effect: exempt, when: {}}\n",
        "bad",
    )
    text = "\n".join(map(str, bad.errors))
    assert "rules[2].exempts[0]: unknown rule id 'directiv'" in text, text
    assert "rules[2].exempts[1]: rule 'entitled' is not a deny rule (effect: allow)" in text, text
    assert "'exempts' is only for rules with effect: exempt" in text, text
    assert "must name the deny rules it lifts" in text, text
    plain = "rules:\n  - {id: entitled, effect: allow, when: {model_allowed_for_tier: true}}\n"
    # Pinned: the version of a bundle without exemptions did not change with this feature.
    assert load(plain, "plain").version == (
        "c13cb3927298e89831f5272b5079f393010fe230695064e5ed1b81dc2c3a9053"
    )


def test_diff_of_an_added_licence_shows_its_legal_basis(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.policy.diff import diff_bundles

    old = load_dir(write_bundle(tmp_path / "old", dict(MINIMAL, **{"rules.yaml": "rules: []\n"})))
    cited = RULES.replace(
        "reason: Served under licence 0042.", "reason: Served.\n    legal_basis: Licence 0042"
    )
    new = load_dir(write_bundle(tmp_path / "new", dict(MINIMAL, **{"rules.yaml": cited})))
    assert old.bundle is not None and new.bundle is not None, new.errors
    text = "\n".join(str(c) for c in diff_bundles(old.bundle, new.bundle))
    # The reviewer of a licence must see which licence it cites.
    assert "legal_basis: Licence 0042" in text, text
