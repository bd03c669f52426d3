"""A policy test's principal and request are checked as the admin API checks a customer record.

A typo'd code never matches any set, so a case expecting allow passed whatever
the policy said: ``residence: UK`` escapes ``residence_in`` of every group.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.policy.loader import load_bundle
from gateway.policy.testing import run_tests
from tests.policy.conftest import AFTER_DIRECTIVE, POLICIES

runner = CliRunner()

TYPOS = """\
cases:
  - name: typos in every code field
    principal:
      tier: enterprise
      kyc_level: kyb_verified
      residence: UK
      citizenships: [US, UK]
      incorporated_in: XX
      ownership: [{country: QQ, percent: 60}]
    request: {model: haiku-lite, origin: US}
    expect: {decision: allow}
  - name: more owned than there is
    principal:
      tier: enterprise
      kyc_level: kyb_verified
      ownership: [{country: US, percent: 60}, {country: DE, percent: 60}]
      attributes: [academic_affiliation, Bad Attr!]
    request: {model: haiku-lite, origin: XX-99}
    expect: {decision: allow}
"""

GOOD = """\
cases:
  - name: a Crimean resident (region code) is refused
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [DE], residence: UA-43}
    request: {model: haiku-lite, origin: DE}
    expect: {decision: deny, rule_ids: [sanctioned-residence]}
  - name: codes are read as the admin API stores them (upper case)
    principal:
      tier: enterprise
      kyc_level: kyb_verified
      citizenships: [de]
      residence: cu
      incorporated_in: de
      ownership: [{country: cn, percent: 60}]
    request: {model: haiku-lite, origin: ua-43}
    expect:
      decision: deny
      rule_ids: [sanctioned-origin, sanctioned-residence, controlled-by-country-of-concern]
  - name: Kosovo is a country the admin API accepts
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [XK], residence: XK}
    request: {model: haiku-lite, origin: US}
    expect: {decision: allow}
"""


def _bundle(tmp_path: Path, name: str, text: str) -> Path:
    bundle = tmp_path / "b"
    shutil.copytree(POLICIES, bundle)
    shutil.rmtree(bundle / "tests")
    (bundle / "tests").mkdir()
    (bundle / "tests" / name).write_text(text)
    return bundle


def test_invalid_codes_in_principal_and_origin_are_test_file_errors(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "typos.yaml", TYPOS)
    result = runner.invoke(app, ["policy", "test", str(bundle)])
    out = result.output
    assert result.exit_code == 1, out
    for line in (
        "tests/typos.yaml:6 cases[0].principal.residence\n"
        "     invalid ISO 3166 country or region code 'UK' (the United Kingdom is GB)",
        "tests/typos.yaml:7 cases[0].principal.citizenships[1]\n"
        "     invalid ISO 3166-1 alpha-2 country code 'UK' (the United Kingdom is GB)",
        "tests/typos.yaml:8 cases[0].principal.incorporated_in\n"
        "     invalid ISO 3166-1 alpha-2 country code 'XX'",
        "tests/typos.yaml:9 cases[0].principal.ownership[0].country\n"
        "     invalid ISO 3166-1 alpha-2 country code 'QQ'",
        "tests/typos.yaml:16 cases[1].principal.ownership\n"
        "     ownership percentages add up to more than 100",
        "tests/typos.yaml:17 cases[1].principal.attributes[1]\n     attribute 'Bad Attr!'",
        "tests/typos.yaml:18 cases[1].request.origin\n"
        "     invalid ISO 3166 country or region code 'XX-99'",
    ):
        assert line in out, (line, out)
    # Every problem is a failure; no case of the file ran.
    assert "0 passed, 7 failed" in out
    assert "cases[0].principal.citizenships[0]" not in out  # US is fine


def test_region_residence_and_lower_case_codes_are_accepted(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "good.yaml", GOOD)
    results = run_tests(bundle, load_bundle(bundle), lambda: AFTER_DIRECTIVE)
    assert [(r.name, r.passed, r.detail) for r in results] == [
        ("a Crimean resident (region code) is refused", True, ""),
        ("codes are read as the admin API stores them (upper case)", True, ""),
        ("Kosovo is a country the admin API accepts", True, ""),
    ]
