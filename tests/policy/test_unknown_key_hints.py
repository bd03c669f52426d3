"""An unknown key names the key meant.

``rules[0].capabilities_in: unknown key`` left the officer to find the
spelling in the docs; a condition dedented out of its ``when`` (valid YAML)
read "unknown key" at the rule, with nothing saying it belongs under
``when``.
"""

from __future__ import annotations

from pathlib import Path

from gateway.policy.loader import load_dir
from tests.policy.conftest import MINIMAL, write_bundle

ENTITLEMENT = "  - {id: entitlement, effect: allow, when: {model_allowed_for_tier: true}}\n"


def errors_of(tmp_path: Path, rule: str) -> list[str]:
    files = dict(MINIMAL, **{"rules.yaml": "rules:\n" + rule + ENTITLEMENT})
    return [str(e) for e in load_dir(write_bundle(tmp_path / "b", files)).errors]


def test_a_misspelt_condition_names_the_one_meant(tmp_path: Path) -> None:
    rule = (
        "  - id: d\n    effect: deny\n"
        "    when: {model_in: [small], capabilities_in: [agentic]}\n"
    )
    assert errors_of(tmp_path, rule) == [
        "rules.yaml:4 rules[0].when.capabilities_in: unknown key (did you mean 'capability_in'?)"
    ]


def test_a_condition_outside_its_when_says_where_it_goes(tmp_path: Path) -> None:
    rule = (
        "  - id: d\n    effect: deny\n    when:\n      model_in: [small]\n"
        "    citizenship_in: [CN]\n"
    )
    assert errors_of(tmp_path, rule) == [
        "rules.yaml:6 rules[0].citizenship_in: unknown key ('citizenship_in' is a condition: "
        "indent it under 'when' or 'unless')"
    ]


def test_a_misspelt_rule_key(tmp_path: Path) -> None:
    rule = (
        "  - id: d\n    effect: deny\n    when: {model_in: [small]}\n"
        '    effective: {from: "2026-11-29T00:00:00Z", untill: "2027-01-01T00:00:00Z"}\n'
    )
    assert errors_of(tmp_path, rule) == [
        "rules.yaml:5 rules[0].effective.untill: unknown key (did you mean 'until'?)"
    ]


def test_an_unknown_capability_or_group_lists_the_known_ones(tmp_path: Path) -> None:
    rule = (
        "  - id: d\n    effect: deny\n"
        "    when: {capability_in: [code], citizenship_in: china}\n"
    )
    assert errors_of(tmp_path, rule) == [
        "rules.yaml:4 rules[0].when.capability_in[0]: unknown capability 'code' "
        "(known: agentic)",
        "rules.yaml:4 rules[0].when.citizenship_in: unknown country group 'china' "
        "(the bundle defines none)",
    ]


def test_a_start_key_names_from_and_a_scalar_window_says_it_is_a_mapping(
    tmp_path: Path,
) -> None:
    start = (
        "  - id: d\n    effect: deny\n    when: {model_in: [small]}\n"
        '    effective: {start: "2026-11-29T00:00:00Z"}\n'
    )
    assert errors_of(tmp_path, start) == [
        "rules.yaml:5 rules[0].effective.start: unknown key (did you mean 'from'?)"
    ]
    scalar = (
        "  - id: d\n    effect: deny\n    when: {model_in: [small]}\n"
        '    effective: "2026-11-29T00:00:00Z"\n'
    )
    assert errors_of(tmp_path, scalar) == [
        "rules.yaml:5 rules[0].effective: should be a mapping of keys to values, "
        "e.g. {key: value} (got a string)"
    ]


def test_a_policy_test_key_is_matched_against_the_test_schema(tmp_path: Path) -> None:
    # 'customer_id' in a case's principal is the record's 'id': the hint
    # used to offer the bundle's condition 'customer_in'.
    from gateway.policy.loader import load_bundle
    from gateway.policy.testing import run_tests

    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"rules.yaml": "rules:\n" + ENTITLEMENT}))
    write_bundle(d / "tests", {"cases.yaml": (
        "cases:\n  - name: the lab\n    principal: {customer_id: lab}\n"
        "    request: {model: small}\n    expect: {decision: allow}\n")})  # fmt: skip
    [result] = run_tests(d, load_bundle(d))
    assert (result.name, result.detail) == (
        "cases[0].principal.customer_id", "unknown key (did you mean 'id'?)"
    )
