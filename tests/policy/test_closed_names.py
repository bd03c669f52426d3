"""Endpoints and attributes a bundle names are checked at load, like every other name.

``endpoint_in: [/v1/nothing]`` and ``has_attribute: "Bad Attr!"`` loaded: the
first never matches a request, the second no customer record, so a deny
guarded by them denied nobody and an ``unless`` built on them exempted nobody.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.policy.loader import load_dir
from gateway.proxy.paths import ROUTES
from tests.policy.conftest import MINIMAL, POLICIES, write_bundle

runner = CliRunner()

RULES = """\
rules:
  - id: only-chat
    effect: deny
    when:
      endpoint_in: [/v1/chat/completions, /v1/nothing]
      any:
        - {endpoint_in: v1/messages}
  - id: attrs
    effect: allow
    when: {has_attribute: "Bad Attr!"}
    unless:
      has_attribute: [academic_affiliation, AcademicAffiliation]
  - id: fine
    effect: allow
    when:
      endpoint_in: [/v1/models, /v1/messages/count_tokens]
      has_attribute: us_permanent_resident
"""
TIERS = """\
kyc_levels: [none, kyb_verified]
tiers:
  public: {min_kyc: none}
  enterprise: {min_kyc: kyb_verified, require_attributes: [vetted, Vetted Org]}
"""


def test_unknown_endpoints_and_malformed_attributes_are_load_errors(tmp_path: Path) -> None:
    files = dict(MINIMAL, **{"rules.yaml": RULES, "tiers.yaml": TIERS})
    result = load_dir(write_bundle(tmp_path / "b", files))
    known = ", ".join(sorted(ROUTES))
    attr = "(lower case letters, digits and _, starting with a letter)"
    assert [str(e) for e in result.errors] == [
        f"rules.yaml:5 rules[0].when.endpoint_in[1]: unknown endpoint '/v1/nothing' "
        f"(known: {known})",
        f"rules.yaml:7 rules[0].when.any[0].endpoint_in: unknown endpoint 'v1/messages' "
        f"(known: {known})",
        f"rules.yaml:10 rules[1].when.has_attribute: attribute 'Bad Attr!' can never be on "
        f"a customer record {attr}",
        f"rules.yaml:12 rules[1].unless.has_attribute[1]: attribute 'AcademicAffiliation' "
        f"can never be on a customer record {attr}",
        f"tiers.yaml:4 tiers.enterprise.require_attributes[1]: attribute 'Vetted Org' "
        f"can never be on a customer record {attr}",
    ]


def test_a_policy_test_endpoint_must_be_a_proxied_route(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(POLICIES, bundle)
    (bundle / "tests" / "ep.yaml").write_text(
        "cases:\n"
        "  - name: a route that does not exist\n"
        "    request: {model: haiku-lite, origin: US, endpoint: /v1/nothing}\n"
        "    expect: {decision: deny}\n"
        "  - name: an Anthropic route\n"
        "    principal: {tier: enterprise, kyc_level: kyb_verified}\n"
        "    request: {model: haiku-lite, origin: US, endpoint: /v1/messages}\n"
        "    expect: {decision: allow}\n"
    )
    result = runner.invoke(app, ["policy", "test", str(bundle), "-v"])
    assert result.exit_code == 1, result.output
    assert (
        "FAIL tests/ep.yaml:3 cases[0].request.endpoint\n     unknown endpoint '/v1/nothing'"
        in result.output
    )
    assert "PASS tests/ep.yaml:5 an Anthropic route" in result.output
