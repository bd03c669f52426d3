"""``explain``: the slow path that says why, checked against ``decide`` itself.

The verdict of an explanation must be the engine's, for every case the bundle's
own policy tests hold (read with the same loader), and its trace must agree
with it: the rules it marks as deciding are the decision's rule ids.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.policy import schema as s
from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide
from gateway.policy.explain import explain, rule_locations
from gateway.policy.explain_conditions import DESCRIBED_KEYS
from gateway.policy.testing import CaseIn, origin_of, request_facts
from gateway.policy.yamlsrc import parse_file
from tests.policy.conftest import POLICIES

runner = CliRunner()
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def bundled_cases() -> list[tuple[str, CaseIn]]:
    cases = []
    for path in sorted((POLICIES / "tests").glob("*.yaml")):
        parsed = parse_file(path, path.name)
        assert parsed.data is not None, parsed.errors
        for raw in parsed.data["cases"]:
            case = CaseIn.model_validate(raw)
            cases.append((f"{path.name}: {case.name}", case))
    return cases


CASES = bundled_cases()


@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[n for n, _ in CASES])
def test_explain_verdict_is_decides_for_every_bundled_case(
    case: CaseIn, default_bundle: CompiledBundle
) -> None:
    principal = case.principal.principal()
    at = case.at or NOW
    origin = origin_of(case.request.origin)
    facts = request_facts(principal, case.request, default_bundle, at, origin)
    assert not isinstance(facts, str), facts
    decision = decide(principal, facts, default_bundle, at)
    explained = explain(principal, facts, default_bundle, at, rule_locations(POLICIES))
    assert explained.decision.decision == decision.decision == case.expect.decision
    assert explained.decision.rule_ids == decision.rule_ids
    assert explained.decision.effective_tier == decision.effective_tier
    # The trace, evaluated rule by rule, names the same deciding rules.
    deciding = tuple(r.id for r in explained.trace if r.outcome == "decides")
    from_rules = [i for i in decision.rule_ids if any(r.id == i for r in explained.trace)]
    assert list(deciding) == from_rules
    for rule in explained.trace:
        assert rule.file is not None and rule.line is not None, rule.id


def test_every_condition_key_is_described() -> None:
    # A condition key added to the schema without a description would be
    # explained as nothing at all: it must be listed (any/all/not recurse).
    keys = {name for name in s.Condition.model_fields if name not in ("any_", "all_", "not_")}
    assert keys == set(DESCRIBED_KEYS)


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["policy", "explain", *args])
    return result.exit_code, result.output


CN_PERSON = json.dumps({"id": "cus_cn", "tier": "enterprise", "kyc_level": "kyb_verified",
                        "citizenships": ["CN"], "residence": "CN"})  # fmt: skip
DE_ENTERPRISE = json.dumps({"tier": "enterprise", "kyc_level": "kyb_verified",
                            "citizenships": ["DE"], "residence": "DE"})  # fmt: skip


def test_cn_citizen_for_a_frontier_model_names_the_rule_line_and_conditions() -> None:
    code, out = run(str(POLICIES), "--principal", CN_PERSON, "--model", "fable-5",
                    "--origin", "DE", "--at", "2026-07-01T00:00:00Z")  # fmt: skip
    assert code == 1, out
    assert "DENY 403" in out
    line = next(
        n for n, text in enumerate((POLICIES / "rules.yaml").read_text().splitlines(), 1)
        if "id: directive-frontier-us-persons-only" in text
    )
    assert f"directive-frontier-us-persons-only  rules.yaml:{line}" in out, out
    assert "model_in [fable-5, mythos-5]: fable-5 → true" in out, out
    assert "unless us_person true: false → false" in out, out


def test_json_document_and_exit_0_when_allowed() -> None:
    code, out = run(str(POLICIES), "--principal", DE_ENTERPRISE, "--model", "haiku-lite",
                    "--origin", "DE", "--at", "2026-07-01T00:00:00Z", "--json")  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    assert doc["decision"] == "allow" and doc["status"] == 200
    assert doc["rule_ids"] == ["tier-entitlement"]
    assert doc["effective_tier"] == "enterprise"
    assert doc["model"]["entitled"] is True
    assert doc["quota"]["tier"] == "enterprise"
    by_id = {r["id"]: r for r in doc["trace"]}
    assert by_id["tier-entitlement"]["outcome"] == "decides"
    assert by_id["sanctioned-origin"]["matched"] is False


def test_body_with_tools_is_classified_agentic(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({
        "model": "haiku-lite",
        "messages": [{"role": "user", "content": "book a flight"}],
        "tools": [{"type": "function", "function": {"name": "book", "parameters": {}}}],
    }))  # fmt: skip
    public = '{"tier": "public", "kyc_level": "email_verified"}'
    code, out = run(str(POLICIES), "--principal", public,
                    "--model", "haiku-lite", "--body", str(body), "--json")  # fmt: skip
    doc = json.loads(out)
    assert "agentic" in doc["capabilities"], out
    # The public tier does not offer agentic use: the quota entry closes it.
    assert doc["decision"] == "deny" and code == 1
    assert doc["rule_ids"] == ["quota-not-offered:public.agentic"]


def test_at_before_the_directive_shows_it_not_in_force() -> None:
    code, out = run(str(POLICIES), "--principal", DE_ENTERPRISE, "--model", "fable-5",
                    "--origin", "DE", "--at", "2026-06-13T03:59:59Z", "--json")  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    directive = next(r for r in doc["trace"] if r["id"] == "directive-frontier-us-persons-only")
    assert directive["in_force"] is False and directive["matched"] is True
    assert directive["outcome"] == "not in force"
    assert directive["effective"] == {"from": "2026-06-13T04:00:00Z", "until": None}
    code, out = run(str(POLICIES), "--principal", DE_ENTERPRISE, "--model", "fable-5",
                    "--origin", "DE", "--at", "2026-06-13T03:59:59Z")  # fmt: skip
    assert "not in force at 2026-06-13T03:59:59Z" in out, out


def test_a_candidate_bundle_answers_what_a_change_would_do(tmp_path: Path) -> None:
    import shutil

    candidate = tmp_path / "candidate"
    shutil.copytree(POLICIES, candidate)
    rules = candidate / "rules.yaml"
    rules.write_text(rules.read_text().replace('from: "2026-06-13T04:00:00Z"',
                                               'from: "2027-01-01T00:00:00Z"'))  # fmt: skip
    args = ("--principal", DE_ENTERPRISE, "--model", "fable-5", "--origin", "DE",
            "--at", "2026-07-01T00:00:00Z")  # fmt: skip
    assert run(str(POLICIES), *args)[0] == 1
    assert run(str(candidate), *args)[0] == 0


def test_usage_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = (str(POLICIES), "--model", "haiku-lite")
    assert run(*base)[0] == 2  # neither --customer nor --principal
    assert run(*base, "--principal", "{", "--origin", "DE")[0] == 2
    assert run(*base, "--principal", '{"tier": "public"}', "--at", "2026-07-01")[0] == 2
    assert run(*base, "--principal", '{"tier": "public"}', "--origin", "ZZ")[0] == 2
    code, out = run(*base, "--principal", '{"tier": "public"}', "--capability", "agentic",
                    "--body", str(tmp_path / "nope.json"))  # fmt: skip
    assert code == 2, out
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'none.db'}")
    code, out = run(*base, "--customer", "cus_x")
    assert code == 2 and "none.db" in out, out
    assert not (tmp_path / "none.db").exists()


def test_client_ip_is_located_by_the_gateways_geo_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_GEOIP_DB", raising=False)
    code, out = run(str(POLICIES), "--principal", DE_ENTERPRISE, "--model", "haiku-lite",
                    "--client-ip", "175.45.176.1", "--json")  # fmt: skip
    doc = json.loads(out)
    assert doc["origin"]["country"] == "KP", out
    assert doc["rule_ids"] == ["sanctioned-origin"] and code == 1


def test_principal_from_a_yaml_file_as_policy_tests_write_it(tmp_path: Path) -> None:
    principal = tmp_path / "greta.yaml"
    principal.write_text(
        "tier: enterprise\nkyc_level: kyb_verified\ncitizenships: [DE]\nresidence: DE\n"
        "kyc_expires_at: 2026-06-01T00:00:00Z\n"
    )
    code, out = run(str(POLICIES), "--principal", str(principal), "--model", "haiku-lite",
                    "--origin", "DE", "--at", "2026-07-01T00:00:00Z", "--json")  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    # Expired KYC: demoted to public, and haiku-lite is still a public model.
    assert doc["effective_tier"] == "public" and doc["assigned_tier"] == "enterprise", out
    assert doc["tier_demotion"] == "KYC expired at 2026-06-01T00:00:00Z"
    _, out = run(str(POLICIES), "--principal", str(principal), "--model", "haiku-lite",
                 "--origin", "DE", "--at", "2026-07-01T00:00:00Z")  # fmt: skip
    assert "tier demoted to public: KYC expired at 2026-06-01T00:00:00Z" in out, out


def test_control_shown_is_the_one_of_the_branch_that_fired(tmp_path: Path) -> None:
    import shutil

    candidate = tmp_path / "candidate"
    shutil.copytree(POLICIES, candidate)
    rules = candidate / "rules.yaml"
    rules.write_text(rules.read_text() + (
        "\n  - id: fr-from-cn-or-de-fr-control\n    effect: deny\n"
        "    when: {any: [{controlled_by_in: [FR], origin_in: [CN]},"
        " {controlled_by_in: [DE, FR]}]}\n    reason: Test rule.\n"
    ))  # fmt: skip
    company = json.dumps({
        "kind": "organization", "tier": "enterprise", "kyc_level": "kyb_verified",
        "incorporated_in": "SG", "ownership": [
            {"country": "SG", "percent": 60, "name": "Gallic Holdings SARL",
             "ownership": [{"country": "FR", "percent": 100}]},
            {"country": "DE", "percent": 30}, {"country": "SG", "percent": 10}],
    })  # fmt: skip
    args = (str(candidate), "--principal", company, "--model", "haiku-lite", "--origin", "US",
            "--at", "2026-07-01T00:00:00Z")  # fmt: skip
    code, out = run(*args, "--json")
    assert code == 1, out
    doc = json.loads(out)
    assert doc["rule_ids"] == ["fr-from-cn-or-de-fr-control"]
    assert doc["ownership_control"] == {"fr-from-cn-or-de-fr-control": {
        "share_percent": 90.0, "threshold_percent": 50.0,
        "paths": ["Gallic Holdings SARL (SG) 60% <- FR 100%", "DE 30%"],
    }}  # fmt: skip
    _, out = run(*args)
    assert ("control (fr-from-cn-or-de-fr-control): 90% (threshold 50%) through "
            "Gallic Holdings SARL (SG) 60% <- FR 100%; DE 30%") in out, out
