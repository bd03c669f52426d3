"""YAML syntax errors an officer's edit makes, said in words an officer reads.

PyYAML's own words ("expected <block end>, but found '<block mapping
start>'") name parser states, not the slip: a key indented deeper or
shallower than its neighbours, or a tab. Each now carries a plain hint,
after PyYAML's message (kept for whoever knows it).
"""

from __future__ import annotations

from pathlib import Path

from gateway.policy.loader import load_dir
from tests.policy.conftest import MINIMAL, write_bundle

DIRECTIVE = """\
rules:
  - id: directive-cn-small-coding
    effect: deny
    when:
      model_in: [small]
      citizenship_in: [CN]
    reason: Suspended by order.
  - id: entitlement
    effect: allow
    when: {model_allowed_for_tier: true}
"""


def errors_of(tmp_path: Path, rules: str) -> list[str]:
    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"rules.yaml": rules}))
    return [str(e) for e in load_dir(d).errors]


def test_a_key_indented_shallower_than_its_neighbours(tmp_path: Path) -> None:
    text = DIRECTIVE.replace("      citizenship_in", "     citizenship_in")
    [error] = errors_of(tmp_path, text)
    assert error.startswith("rules.yaml:6: YAML syntax error: "), error
    assert error.endswith(
        "; check the indentation of line 6: keys of one mapping, and items of one "
        "list, start in the same column as the ones above them"
    ), error


def test_a_list_item_out_of_line(tmp_path: Path) -> None:
    text = DIRECTIVE.replace("  - id: entitlement", "- id: entitlement")
    [error] = errors_of(tmp_path, text)
    assert error.startswith("rules.yaml:8: YAML syntax error: "), error
    assert "check the indentation of line 8" in error, error


def test_a_tab(tmp_path: Path) -> None:
    text = DIRECTIVE.replace("    reason:", "\treason:")
    [error] = errors_of(tmp_path, text)
    assert error.startswith("rules.yaml:7: YAML syntax error: "), error
    assert error.endswith("; YAML is indented with spaces only: replace the tab"), error
