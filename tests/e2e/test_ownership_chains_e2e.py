"""Ownership chains through the real gateway and the official OpenAI SDK: a
Singapore company whose parent is CN-owned is refused by the bundled rule,
its decision record says through which chain, and the record's facts replay
to the same decision; a 40% holding through that parent is served."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import openai
import pytest

from gateway.policy.engine import decide
from gateway.policy.loader import load_bundle
from gateway.policy.replay import from_replay
from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e

RULE = "controlled-by-country-of-concern"
LION = {
    "country": "SG",
    "name": "Lion Holdings Pte",
    "ownership": [{"country": "CN", "percent": 100}],
}


def _client(gateway: Proc, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                         default_headers={"x-forwarded-for": US_IP})  # fmt: skip


def _company(admin: Admin, name: str, lion_percent: float) -> str:
    return admin.customer_with_key(**{
        **US_ENTERPRISE, "name": name, "residence": "SG", "incorporated_in": "SG",
        "ownership": [{**LION, "percent": lion_percent},
                      {"country": "SG", "percent": 100 - lion_percent}],
    })  # fmt: skip


def test_a_company_whose_parent_is_cn_owned_is_refused_and_the_record_says_why(
    gateway: Proc, admin: Admin
) -> None:
    refused_key = _company(admin, "Merlion Robotics Pte", 60)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _client(gateway, refused_key).chat.completions.create(
            model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == RULE, refused.value.body
    decision_id = refused.value.response.headers["x-gateway-decision-id"]
    record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    assert record["rule_ids"] == [RULE]
    assert record["facts"]["ownership_control"] == {
        RULE: {
            "share_percent": 60.0,
            "threshold_percent": 50.0,
            "paths": ["Lion Holdings Pte (SG) 60% <- CN 100%"],
        }
    }
    # Replay (gateway policy impact) decides it again from the record's facts alone.
    principal, facts = from_replay(record["facts"])
    assert principal.ownership[0].ownership[0].country == "CN"
    bundle = load_bundle(REPO / "policies")
    again = decide(principal, facts, bundle, datetime.fromisoformat(record["ts"]))
    assert again.rule_ids == (RULE,)

    served_key = _company(admin, "Temasek Mini Pte", 40)
    reply = _client(gateway, served_key).chat.completions.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


def test_a_refusal_by_another_condition_is_not_explained_as_control_by_two_sets_added(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """A rule may name several ``controlled_by_in`` sets (``any`` of them, or
    beside other conditions). Each is a condition of its own: 30% from FR and
    30% from DE is control by neither. Refused for its origin, the record said
    the customer was refused for being 60% controlled by FR and DE together,
    a control no condition of the rule tests and an auditor would believe."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    rules = bundle / "rules.yaml"
    rules.write_text(rules.read_text() + (
        "\n  - id: fr-or-de-control-or-us-origin\n    effect: deny\n"
        "    when: {any: [{controlled_by_in: [FR]}, {controlled_by_in: [DE]},"
        " {origin_in: [US]}]}\n    reason: Test rule.\n"
    ))
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**{
        **US_ENTERPRISE, "name": "Two Halves Pte", "residence": "SG", "incorporated_in": "SG",
        "ownership": [
            {"country": "SG", "percent": 30, "name": "Gallic Holdings SARL",
             "ownership": [{"country": "FR", "percent": 100}]},
            {"country": "DE", "percent": 30},
            {"country": "SG", "percent": 40},
        ],
    })  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _client(gateway, key).chat.completions.create(
            model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    decision_id = refused.value.response.headers["x-gateway-decision-id"]
    record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    assert record["rule_ids"] == ["fr-or-de-control-or-us-origin"], record
    assert "ownership_control" not in record["facts"], record["facts"].get("ownership_control")
    # Controlled through the FR set: explained by that set alone, DE not added in.
    key = admin.customer_with_key(**{
        **US_ENTERPRISE, "name": "Mostly Gallic Pte", "residence": "SG", "incorporated_in": "SG",
        "ownership": [
            {"country": "SG", "percent": 60, "name": "Gallic Holdings SARL",
             "ownership": [{"country": "FR", "percent": 100}]},
            {"country": "DE", "percent": 30},
        ],
    })  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _client(gateway, key).chat.completions.create(
            model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    decision_id = refused.value.response.headers["x-gateway-decision-id"]
    record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    assert record["facts"]["ownership_control"] == {"fr-or-de-control-or-us-origin": {
        "share_percent": 60.0, "threshold_percent": 50.0,
        "paths": ["Gallic Holdings SARL (SG) 60% <- FR 100%"],
    }}  # fmt: skip


def test_the_control_explained_is_the_branch_that_fired(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """A ``controlled_by_in`` set that holds inside an ``any`` alternative that
    does not (its origin is not CN) did not refuse anyone. The record named
    the first set that held, [FR] at 60%, where the engine fired on the
    second alternative, [DE, FR] at 90%; a rule fired by origin alone was
    explained as control by FR. ``policy explain`` shows what the record does."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    rules = bundle / "rules.yaml"
    rules.write_text(rules.read_text() + (
        "\n  - id: fr-from-cn-or-de-fr-control\n    effect: deny\n"
        "    when: {any: [{controlled_by_in: [FR], origin_in: [CN]},"
        " {controlled_by_in: [DE, FR]}]}\n    reason: Test rule.\n"
        "\n  - id: fr-from-cn-or-us-origin\n    effect: deny\n"
        "    when: {any: [{controlled_by_in: [FR], origin_in: [CN]}, {origin_in: [US]}]}\n"
        "    reason: Test rule.\n"
    ))
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    admin = Admin(gateway.url)
    created = admin.customer(**{
        **US_ENTERPRISE, "name": "Gallic Rhine Pte", "residence": "SG", "incorporated_in": "SG",
        "ownership": [
            {"country": "SG", "percent": 60, "name": "Gallic Holdings SARL",
             "ownership": [{"country": "FR", "percent": 100}]},
            {"country": "DE", "percent": 30},
            {"country": "SG", "percent": 10},
        ],
    })  # fmt: skip
    key = admin.key(str(created["id"]))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _client(gateway, key).chat.completions.create(
            model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    decision_id = refused.value.response.headers["x-gateway-decision-id"]
    record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    assert record["rule_ids"] == ["fr-from-cn-or-de-fr-control", "fr-from-cn-or-us-origin"]
    fired = {"fr-from-cn-or-de-fr-control": {
        "share_percent": 90.0, "threshold_percent": 50.0,
        "paths": ["Gallic Holdings SARL (SG) 60% <- FR 100%", "DE 30%"],
    }}  # fmt: skip
    assert record["facts"]["ownership_control"] == fired
    explained = admin.http.post("/admin/v1/policy/explain", json={
        "customer_id": created["id"], "request": {"model": "haiku-lite"}, "client_ip": US_IP,
    })  # fmt: skip
    assert explained.status_code == 200, explained.text
    assert explained.json()["rule_ids"] == record["rule_ids"]
    assert explained.json()["ownership_control"] == fired
