"""Report-mode rules in the officer's tools: validate, policy tests, diff, impact."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.policy.diff import diff_bundles
from gateway.policy.impact import impact
from gateway.policy.loader import load_bundle, load_dir
from gateway.policy.replay import replay_facts
from gateway.policy.testing import run_tests
from tests.policy.conftest import MINIMAL, facts, principal, write_bundle
from tests.policy.test_report_mode import DE_ENT, NOW, RULES

runner = CliRunner()
ENFORCED = RULES.replace("    mode: report\n", "")
CASES = """\
cases:
  - name: the draft would deny a German on big
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [DE]}
    request: {model: big, origin: DE}
    expect: {decision: allow, rule_ids: [entitled], report_rule_ids: [draft-big-de]}
  - name: nothing reported on small
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [DE]}
    request: {model: small, origin: DE}
    expect: {decision: allow, report_rule_ids: []}
  - name: wrong report expectation
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [FR]}
    request: {model: big, origin: DE}
    expect: {decision: allow, report_rule_ids: [draft-big-de]}
  - name: a report rule never decides
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [DE]}
    request: {model: big, origin: DE}
    expect: {decision: deny, rule_ids: [draft-big-de]}
  - name: an enforced rule is not reported
    request: {model: small, origin: IR}
    expect: {decision: deny, report_rule_ids: [no-ir]}
"""


def bundle_dir(tmp_path: Path, rules: str, name: str = "b") -> Path:
    return write_bundle(tmp_path / name, dict(MINIMAL, **{"rules.yaml": rules}))


def policy(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["policy", *args])
    return result.exit_code, result.output


def test_validate_names_the_report_rules(tmp_path: Path) -> None:
    code, out = policy("validate", str(bundle_dir(tmp_path, RULES)))
    assert code == 0, out
    assert "3 rules" in out and "report mode (logged, not enforced): draft-big-de" in out
    code, out = policy("validate", str(bundle_dir(tmp_path, ENFORCED, "e")))
    assert code == 0 and "report mode" not in out


def test_validate_refuses_an_unknown_mode_with_file_line_field(tmp_path: Path) -> None:
    code, out = policy("validate", str(bundle_dir(tmp_path, RULES.replace("report", "shadow"))))
    assert code == 1
    assert "rules.yaml:6 rules[2].mode: Input should be 'enforce' or 'report'" in out


def test_policy_tests_assert_report_matches(tmp_path: Path) -> None:
    directory = bundle_dir(tmp_path, RULES)
    (directory / "tests").mkdir()
    (directory / "tests" / "draft.yaml").write_text(CASES)
    results = {r.name: r for r in run_tests(directory, load_bundle(directory), lambda: NOW)}
    assert results["the draft would deny a German on big"].passed
    assert results["nothing reported on small"].passed
    wrong = results["wrong report expectation"]
    assert not wrong.passed
    assert "expected report_rule_ids ['draft-big-de'], got []" in wrong.detail
    # Naming a rule under the wrong list is a test-file error, with its line.
    by_path = {r.name: r for r in results.values() if r.name.startswith("cases[")}
    assert "is in report mode: it never decides" in by_path["cases[3].expect.rule_ids[0]"].detail
    assert by_path["cases[3].expect.rule_ids[0]"].line == 17
    assert "is enforced (not in report mode)" in by_path[
        "cases[4].expect.report_rule_ids[0]"].detail
    code, out = policy("test", str(directory))
    assert code == 1 and "2 passed, 3 failed" in out


def test_diff_says_a_rule_is_now_enforced(tmp_path: Path) -> None:
    report = load_dir(bundle_dir(tmp_path, RULES, "r")).bundle
    enforced = load_dir(bundle_dir(tmp_path, ENFORCED, "e")).bundle
    plain = load_dir(bundle_dir(tmp_path, RULES.split("  - id: draft")[0], "p")).bundle
    assert report is not None and enforced is not None and plain is not None
    [change] = diff_bundles(report, enforced)
    assert (change.section, change.name, change.kind) == ("rules", "draft-big-de", "changed")
    assert change.details == ("now ENFORCED (was report-only): its matches decide requests",)
    [back] = diff_bundles(enforced, report)
    assert back.details[0].startswith("now REPORT-ONLY (was enforced)")
    [added] = diff_bundles(plain, report)
    assert added.kind == "added" and added.details[0] == "mode: report (logged only, never decides)"
    code, out = policy("diff", str(tmp_path / "r"), str(tmp_path / "e"))
    assert code == 0 and "rules: changed draft-big-de" in out and "now ENFORCED" in out


def _records() -> list[dict[str, object]]:
    """Two allows recorded under the report bundle: the draft matched the German only."""
    out: list[dict[str, object]] = []
    for cid, cits, reported in (("de", {"DE"}, ["draft-big-de"]), ("fr", {"FR"}, [])):
        p = principal(**dict(DE_ENT, customer_id=cid, citizenships=cits))
        out.append({"id": f"rec-{cid}", "ts": NOW.isoformat(), "decision": "allow",
                    "status": 200, "rule_ids": ["entitled"], "report_rule_ids": reported,
                    "facts": replay_facts(p, facts("big", "DE"))})
    return out


def test_impact_counts_the_flips_of_a_rule_switched_to_enforce(tmp_path: Path) -> None:
    enforced = load_bundle(bundle_dir(tmp_path, ENFORCED, "e"))
    report = impact(_records(), enforced)
    assert (report.to_deny, report.to_allow, report.unchanged) == (1, 0, 1)
    assert report.by_rule == {"draft-big-de": 1}
    assert report.from_report == {"draft-big-de": 1}
    assert report.report_matches == {}
    # The same rule still in report mode flips nothing and is counted as a dry run.
    staged = impact(_records(), load_bundle(bundle_dir(tmp_path, RULES, "r")))
    assert (staged.flipped, staged.unchanged) == (0, 2)
    assert staged.report_matches == {"draft-big-de": 1} and staged.from_report == {}
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    code, out = policy("impact", str(tmp_path / "e"), "--since", "5200w", "--from-jsonl",
                       str(path), "--at", NOW.isoformat())
    assert code == 0, out
    assert "1 allow->deny" in out
    assert "flips by rules that were in report mode, now enforced" in out


def test_the_example_in_the_bundled_rules_is_a_valid_report_rule(tmp_path: Path) -> None:
    """The commented-out example in policies/rules.yaml, uncommented, loads and observes."""
    from gateway.policy.engine import decide
    from tests.policy.conftest import AFTER_DIRECTIVE, POLICIES

    text = (POLICIES / "rules.yaml").read_text()
    start = text.index("  # - id: draft-directive-mythos-non-us")
    example = "".join(line.replace("  # ", "  ", 1) for line in text[start:].splitlines(True))
    copy = write_bundle(tmp_path / "b", {p.name: p.read_text() for p in POLICIES.glob("*.yaml")})
    (copy / "rules.yaml").write_text(text[:start] + example)
    bundle = load_bundle(copy)
    assert bundle.report_rule_ids() == {"draft-directive-mythos-non-us"}
    gov = principal(tier="government", kyc_level="government_cleared", citizenships={"US"},
                    residence="US")
    abroad = decide(gov, facts("mythos-5", "DE"), bundle, AFTER_DIRECTIVE)
    assert abroad.allowed and abroad.report_rule_ids == ("draft-directive-mythos-non-us",)
    home = decide(gov, facts("mythos-5", "US"), bundle, AFTER_DIRECTIVE)
    assert home.allowed and home.report_rule_ids == ()
