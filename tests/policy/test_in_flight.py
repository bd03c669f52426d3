"""``in_flight`` on rules: checked at load, compiled into each model's cut instants."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.policy.compiled import compile_bundle
from gateway.policy.loader import load_dir
from tests.policy.conftest import MINIMAL, write_bundle

RULES = """\
rules:
  - id: directive
    effect: deny
    in_flight: {mode}
    when: {{model_in: [big]}}
    effective: {{from: "2026-06-13T06:00:00Z"}}
  - {{id: entitled, effect: allow, when: {{model_allowed_for_tier: true}}}}
"""


def _load(tmp_path: Path, name: str, rules: str):  # type: ignore[no-untyped-def]
    return load_dir(write_bundle(tmp_path / name, dict(MINIMAL, **{"rules.yaml": rules})))


def test_cut_instants_per_model_and_finish_keeps_the_version(tmp_path: Path) -> None:
    cut = _load(tmp_path, "cut", RULES.format(mode="cut"))
    assert cut.ok and cut.bundle is not None and cut.version is not None, cut.errors
    compiled = compile_bundle(cut.bundle, cut.version)
    assert compiled.rules_for("big").cut_starts == (datetime(2026, 6, 13, 6, tzinfo=UTC),)
    assert compiled.rules_for("small").cut_starts == ()
    finish = _load(tmp_path, "finish", RULES.format(mode="finish"))
    plain = _load(tmp_path, "plain", RULES.replace("    in_flight: {mode}\n", "").format())
    assert finish.version == plain.version != cut.version


def test_cut_is_for_deny_rules_only(tmp_path: Path) -> None:
    bad = _load(
        tmp_path,
        "bad",
        "rules:\n  - {id: a, effect: allow, in_flight: cut, when: {}}\n"
        "  - {id: b, effect: deny, in_flight: sometimes, when: {}}\n",
    )
    text = "\n".join(map(str, bad.errors))
    assert "'in_flight: cut' is only for rules with effect: deny" in text, text
    assert "rules[1].in_flight: Input should be 'finish' or 'cut'" in text, text


def test_diff_says_a_rule_cuts_streams_in_flight(tmp_path: Path) -> None:
    from gateway.policy.diff import diff_bundles

    empty = _load(tmp_path, "empty", "rules: []\n")
    cut = _load(tmp_path, "cut", RULES.format(mode="cut"))
    finish = _load(tmp_path, "finish", RULES.format(mode="finish"))
    assert empty.bundle is not None and cut.bundle is not None and finish.bundle is not None
    added = "\n".join(map(str, diff_bundles(empty.bundle, cut.bundle)))
    assert "in_flight: cut" in added, added
    assert "in_flight" not in "\n".join(map(str, diff_bundles(empty.bundle, finish.bundle)))
    changed = "\n".join(map(str, diff_bundles(finish.bundle, cut.bundle)))
    assert "in_flight: finish -> cut" in changed, changed
