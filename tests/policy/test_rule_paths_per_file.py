"""A rule's path in an error or warning counts within its own file.

Rules of every file are concatenated in file-name order, and errors named
the rule by its position in that merged list: the first rule of
``rules.yaml`` read ``rules.yaml:3 rules[2]`` when ``a.yaml`` held two rules
before it, sending the officer to a third rule the file does not have.
"""

from __future__ import annotations

from pathlib import Path

from gateway.policy.loader import load_dir
from tests.policy.conftest import MINIMAL, write_bundle

EARLIER = """rules:
  - id: first
    effect: deny
    when: {origin_in: [KP]}
  - id: second
    effect: deny
    when: {origin_in: [IR]}
"""


def _load(tmp_path: Path, rules: str) -> tuple[list[str], list[str]]:
    files = dict(MINIMAL, **{"a.yaml": EARLIER, "rules.yaml": rules})
    result = load_dir(write_bundle(tmp_path / "b", files))
    return [str(e) for e in result.errors], [str(w) for w in result.warnings]


def test_checked_errors_name_the_rule_within_its_file(tmp_path: Path) -> None:
    rules = "rules:\n  - id: bad-tier\n    effect: deny\n    when: {tier_in: [gold]}\n"
    errors, _ = _load(tmp_path, rules)
    assert errors == [
        "rules.yaml:4 rules[0].when.tier_in[0]: unknown tier 'gold' (known: enterprise, public)"
    ]


def test_schema_errors_name_the_rule_within_its_file(tmp_path: Path) -> None:
    rules = (
        "rules:\n  - id: ok\n    effect: deny\n    when: {origin_in: [CU]}\n"
        "  - id: bad-mode\n    effect: deny\n    mode: shadow\n    when: {origin_in: [SY]}\n"
    )
    errors, _ = _load(tmp_path, rules)
    assert errors == ["rules.yaml:7 rules[1].mode: Input should be 'enforce' or 'report'"]


def test_exemption_errors_and_dead_rule_warnings_name_the_rule_within_its_file(
    tmp_path: Path,
) -> None:
    rules = (
        "rules:\n  - id: lic\n    effect: exempt\n    exempts: [frist]\n"
        "    when: {customer_in: [lab]}\n"
    )
    errors, _ = _load(tmp_path, rules)
    assert errors == ["rules.yaml:4 rules[0].exempts[0]: unknown rule id 'frist'"]
    everyone = "rules:\n  - id: all\n    effect: deny\n    when: {}\n"
    _, warnings = _load(tmp_path / "w", everyone)
    assert [w.split(": matches")[0] for w in warnings if "matches every" in w] == [
        "rules.yaml:4 rules[0].when"
    ]
