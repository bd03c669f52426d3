"""`gateway policy test` names the rules no case saw match.

An officer adds a directive and its licence, writes cases for the directive
and none for the licence: "N passed, 0 failed" read as sign-off for both. OPA
answers the same question with ``opa test --coverage``; here it is the rules
that no case's decision listed (deciding, or matched in report mode).
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli.main import app
from tests.policy.conftest import MINIMAL, write_bundle

runner = CliRunner()
RULES = """\
rules:
  - id: directive-cn-small
    effect: deny
    when: {model_in: [small], citizenship_in: [CN]}
  - id: licence-cn-lab
    effect: exempt
    exempts: [directive-cn-small]
    when: {customer_in: [cn-lab]}
  - id: entitlement
    effect: allow
    when: {model_allowed_for_tier: true}
"""
CASES = """\
cases:
  - name: a CN citizen loses small
    principal: {tier: public, kyc_level: none, citizenships: [CN]}
    request: {model: small, origin: SG}
    expect: {decision: deny, rule_ids: [directive-cn-small]}
  - name: a JP citizen keeps it
    principal: {tier: public, kyc_level: none, citizenships: [JP]}
    request: {model: small, origin: SG}
    expect: {decision: allow, rule_ids: [entitlement]}
"""
LICENCE_CASE = """\
  - name: the licensed lab keeps it
    principal: {id: cn-lab, tier: public, kyc_level: none, citizenships: [CN]}
    request: {model: small, origin: SG}
    expect: {decision: allow, rule_ids: [entitlement, licence-cn-lab]}
"""


def run_test(tmp_path: Path, cases: str) -> tuple[int, str]:
    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"rules.yaml": RULES}))
    write_bundle(d / "tests", {"cases.yaml": cases})
    result = runner.invoke(app, ["policy", "test", str(d)], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_a_rule_no_case_matched_is_named(tmp_path: Path) -> None:
    code, out = run_test(tmp_path, CASES)
    assert code == 0, out
    assert (
        "rules no case saw match (1 of 3): licence-cn-lab (rules.yaml:5)" in out
    ), out


def test_every_rule_matched_says_so(tmp_path: Path) -> None:
    code, out = run_test(tmp_path, CASES + LICENCE_CASE)
    assert code == 0, out
    assert "every rule matched in at least one case" in out, out
