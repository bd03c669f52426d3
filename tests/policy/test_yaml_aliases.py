"""A policy file whose YAML aliases expand without bound is an error, not a freeze.

The loader builds values from PyYAML's node tree itself (for line numbers)
and walked every alias again, so nine levels of ten aliases each, a 334-byte
file posted to ``POST /admin/v1/policy/validate``, built a million values on
the serving worker's event loop (a second, with nothing else served), seven
levels ten seconds and gigabytes: "billion laughs". Anchors and aliases used
as a bundle uses them (a list written once, named twice) still load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.admin.policy import CandidateBundle, validate_policy
from gateway.policy.yamlsrc import MAX_VALUES, parse_file


def _laughs(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 10)}]" for k in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_aliases_expanding_past_the_bound_are_an_error(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_laughs(6))  # 10**6 values
    parsed = parse_file(bomb)
    assert parsed.data is None
    assert [e.message for e in parsed.errors] == [
        f"expands to more than {MAX_VALUES} values (YAML aliases repeat what they name)"
    ], parsed.errors


def test_anchors_used_as_bundles_use_them_still_load(tmp_path: Path) -> None:
    reused = tmp_path / "groups.yaml"
    reused.write_text("base: &eu [DE, FR, IT]\nagain: *eu\nnested: {inner: *eu}\n")
    parsed = parse_file(reused)
    assert parsed.errors == []
    assert parsed.data == {"base": ["DE", "FR", "IT"], "again": ["DE", "FR", "IT"],
                           "nested": {"inner": ["DE", "FR", "IT"]}}  # fmt: skip


async def test_the_admin_validate_route_answers_a_bomb_with_its_error() -> None:
    actor: Any = None
    body = await validate_policy(CandidateBundle(files={"bomb.yaml": _laughs(6)}), actor)
    assert not body["ok"]
    assert any("expands to more than" in e and e.startswith("bomb.yaml") for e in body["errors"])
