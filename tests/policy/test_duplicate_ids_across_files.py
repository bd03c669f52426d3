"""A rule id used in two files is reported at both.

Files merge in name order, so an officer's new ``directive.yaml`` comes
before ``rules.yaml``: the duplicate was reported only at the established
rule in ``rules.yaml``, and the officer's own file, where the fix belongs,
was named only in passing. A licence naming the duplicated id also got
"is not a deny rule (effect: exempt)" when the later definition was the
licence itself: a follow-on of the duplicate, not a finding.
"""

from __future__ import annotations

from pathlib import Path

from gateway.policy.loader import load_dir
from tests.policy.conftest import MINIMAL, write_bundle


def errors_of(tmp_path: Path, files: dict[str, str]) -> list[str]:
    return [str(e) for e in load_dir(write_bundle(tmp_path / "b", dict(MINIMAL, **files))).errors]


def test_the_new_file_is_named_with_an_error_of_its_own(tmp_path: Path) -> None:
    directive = "rules:\n  - id: no-cn\n    effect: deny\n    when: {citizenship_in: [CN]}\n"
    rules = "rules:\n  - id: no-cn\n    effect: deny\n    when: {origin_in: [CN]}\n"
    assert errors_of(tmp_path, {"directive.yaml": directive, "rules.yaml": rules}) == [
        "directive.yaml:2 rules[0].id: rule id 'no-cn' is defined again at rules.yaml:2",
        "rules.yaml:2 rules[0].id: duplicate rule id 'no-cn' (first defined at directive.yaml:2)",
    ]


def test_a_licence_naming_a_duplicated_id_gets_no_follow_on_error(tmp_path: Path) -> None:
    rules = (
        "rules:\n"
        "  - id: directive\n    effect: deny\n    when: {citizenship_in: [CN]}\n"
        "  - id: directive\n    effect: exempt\n    exempts: [directive]\n"
        "    when: {customer_in: [lab]}\n"
    )
    assert errors_of(tmp_path, {"rules.yaml": rules}) == [
        "rules.yaml:5 rules[1].id: duplicate rule id 'directive' (first defined at rules.yaml:2)"
    ]
