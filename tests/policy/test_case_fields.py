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


BOUND_CASES = """
cases:
  - name: a public request without max_tokens is served at the 20,000 default
    principal: {tier: public, kyc_level: email_verified, citizenships: [US], residence: US}
    request: {model: haiku-lite, origin: US, body: {messages: [{role: user, content: hi}]}}
    expect: {decision: deny, rule_ids: [no-long-horizon-on-public]}
  - name: a bound the client names is the one classified
    principal: {tier: public, kyc_level: email_verified, citizenships: [US], residence: US}
    request:
      model: haiku-lite
      origin: US
      body: {messages: [{role: user, content: hi}], max_tokens: 100}
    expect: {decision: allow}
  - name: an embedding generates nothing and gets no bound
    principal: {tier: public, kyc_level: email_verified, citizenships: [US], residence: US}
    request: {model: haiku-lite, origin: US, endpoint: /v1/embeddings, body: {input: hi}}
    expect: {decision: allow}
"""


def test_policy_tests_classify_the_bound_the_proxy_forwards(tmp_path: Path) -> None:
    """A case whose body names no bound is classified at its tier's
    ``default_max_tokens``, as the proxy serves it (tests/e2e/test_output_bound.py)."""
    bundle = _bundle(tmp_path, "bound.yaml", BOUND_CASES)
    quotas = bundle / "quotas.yaml"
    quotas.write_text(quotas.read_text().replace(
        "public:\n    default_max_tokens: 1024", "public:\n    default_max_tokens: 20000"))
    rules = bundle / "rules.yaml"
    rules.write_text(rules.read_text() + (
        "\n  - id: no-long-horizon-on-public\n    effect: deny\n"
        "    when: {capability_in: [long_horizon], tier_in: [public]}\n"
        "    reason: Not on the public tier.\n"))
    results = run_tests(bundle, load_bundle(bundle), lambda: AFTER_DIRECTIVE)
    assert [(r.name, r.passed, r.detail) for r in results] == [
        ("a public request without max_tokens is served at the 20,000 default", True, ""),
        ("a bound the client names is the one classified", True, ""),
        ("an embedding generates nothing and gets no bound", True, ""),
    ]


CHAIN_TYPOS = """\
cases:
  - name: typos inside an ownership chain
    principal:
      kind: organization
      ownership:
        - country: SG
          percent: 60
          name: Lion Holdings Pte
          ownership: [{country: QQ, percent: 70}, {country: CN, percent: 40}]
    request: {model: haiku-lite, origin: SG}
    expect: {decision: allow}
"""


def test_an_ownership_chain_is_checked_at_every_level(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "chains.yaml", CHAIN_TYPOS)
    result = runner.invoke(app, ["policy", "test", str(bundle)])
    out = result.output
    assert result.exit_code == 1, out
    for line in (
        "tests/chains.yaml:9 cases[0].principal.ownership[0].ownership[0].country\n"
        "     invalid ISO 3166-1 alpha-2 country code 'QQ'",
        "cases[0].principal.ownership[0].ownership\n"
        "     ownership percentages add up to more than 100",
    ):
        assert line in out, (line, out)
