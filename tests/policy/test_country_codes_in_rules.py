"""Country codes in rules and groups: the ones records hold, and hints for common slips.

A customer record (admin API, CLI, policy tests) takes Kosovo's ``XK``, and a
MaxMind database locates Kosovo there, but a rule or a group could not name
it: ``citizenship_in: [XK]`` was "invalid ISO 3166-1 alpha-2 country code",
so no directive could reach the Kosovar citizens the records hold. ``UK``
(the United Kingdom is ``GB``) and a lower-case ``cn`` were refused without
the hint the policy tests already gave.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide
from gateway.policy.loader import load_dir
from tests.policy.conftest import AFTER_DIRECTIVE, MINIMAL, facts, principal, write_bundle

ENTITLEMENT = "  - {id: entitlement, effect: allow, when: {model_allowed_for_tier: true}}\n"


def errors_of(tmp_path: Path, rules: str, groups: str = "") -> list[str]:
    files = dict(MINIMAL, **{"rules.yaml": "rules:\n" + rules + ENTITLEMENT})
    if groups:
        files["groups.yaml"] = groups
    return [str(e) for e in load_dir(write_bundle(tmp_path / "b", files)).errors]


def test_a_rule_and_a_group_can_name_kosovo_as_records_do(
    make_bundle: Callable[..., CompiledBundle],
) -> None:
    bundle = make_bundle(
        "country_groups:\n  balkans: {countries: [XK, RS]}\n"
        "rules:\n"
        "  - {id: no-xk-citizens, effect: deny, when: {citizenship_in: [XK]}}\n"
        "  - {id: no-balkan-origin, effect: deny, when: {origin_in: balkans}}\n" + ENTITLEMENT
    )
    kosovar = principal(tier="public", kyc_level="none", citizenships={"XK"})
    assert decide(kosovar, facts("small", "US"), bundle, AFTER_DIRECTIVE).rule_ids == (
        "no-xk-citizens",
    )
    other = principal(tier="public", kyc_level="none", citizenships={"DE"})
    assert decide(other, facts("small", "XK"), bundle, AFTER_DIRECTIVE).rule_ids == (
        "no-balkan-origin",
    )


def test_uk_is_refused_with_the_code_meant(tmp_path: Path) -> None:
    assert errors_of(
        tmp_path,
        "  - {id: d, effect: deny, when: {citizenship_in: [UK]}}\n",
        "country_groups:\n  g: {countries: [UK]}\n",
    ) == [
        "groups.yaml:2 country_groups.g.countries[0]: invalid ISO 3166-1 alpha-2 country "
        "code 'UK' (the United Kingdom is GB)",
        "rules.yaml:2 rules[0].when.citizenship_in: invalid ISO 3166-1 alpha-2 country "
        "code 'UK' (the United Kingdom is GB)",
    ]


def test_a_lower_case_code_says_codes_are_upper_case(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "  - {id: d, effect: deny, when: {citizenship_in: [cn]}}\n") == [
        "rules.yaml:2 rules[0].when.citizenship_in: unknown country group 'cn' "
        "(country codes are upper case: CN)"
    ]
