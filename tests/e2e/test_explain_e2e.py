"""A request refused by the running gateway, then explained: the same rules.

The customer is created through the admin API of a real gateway process; the
request goes through it and is refused; ``gateway policy explain --customer``
(a subprocess, reading the same SQLite database and the bundle in force) and
``POST /admin/v1/policy/explain`` name the rule ids of the decision record.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.support.processes import Admin, GatewayConfig, Proc, gateway_env

pytestmark = pytest.mark.e2e

DE_IP = "91.98.0.1"
CN_ENTERPRISE = {
    "name": "Li Example",
    "kind": "individual",
    "kyc_level": "kyb_verified",
    "tier": "enterprise",
    "citizenships": ["CN"],
    "residence": "DE",
}


def test_explain_names_the_rules_of_the_recorded_refusal(
    gateway: Proc, admin: Admin, tmp_path: object
) -> None:
    created = admin.customer(**CN_ENTERPRISE)
    customer_id = str(created["id"])
    key = admin.key(customer_id)
    refused = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": DE_IP},
        json={"model": "fable-5", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert refused.status_code == 403, refused.text
    record = admin.http.get(f"/admin/v1/decisions/{refused.headers['x-gateway-decision-id']}")
    assert record.status_code == 200, record.text
    recorded = record.json()["rule_ids"]
    assert recorded == ["directive-frontier-us-persons-only"]

    # A second key, for a chat product, scoped to haiku-lite: explain judges it too.
    scoped = admin.http.post(f"/admin/v1/customers/{customer_id}/keys",
                             json={"name": "chat", "allowed_models": ["haiku-lite"]})  # fmt: skip
    assert scoped.status_code == 201, scoped.text

    # The CLI, as an officer runs it beside the gateway: same database, bundle in force.
    env = gateway_env(GatewayConfig(tmp=gateway.log_path.parent, upstream_url=None))
    cli = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "policy", "explain",
         "--customer", customer_id, "--model", "fable-5", "--client-ip", DE_IP, "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 1, cli.stdout + cli.stderr
    doc = json.loads(cli.stdout)
    assert doc["rule_ids"] == recorded
    assert doc["origin"]["country"] == "DE"
    assert doc["principal"]["id"] == customer_id
    directive = next(r for r in doc["trace"] if r["id"] == recorded[0])
    assert directive["outcome"] == "decides" and directive["file"] == "rules.yaml"

    text = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "policy", "explain",
         "--customer", customer_id, "--model", "fable-5", "--client-ip", DE_IP],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "citizenships: CN" in text.stdout and "unless us_person true" in text.stdout, text.stdout
    assert "(models haiku-lite): refuses: This key may use 'haiku-lite' only" in text.stdout
    assert [k["allowed_models"] for k in doc["key_scope"]["keys"]] == [["haiku-lite"]]
    missing = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "policy", "explain",
         "--customer", "cus_nobody", "--model", "fable-5"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "cus_nobody" in missing.stdout + missing.stderr

    # The admin API answers the same, records who asked, and writes no decision.
    before = admin.http.get("/admin/v1/decisions").json()["items"]
    answer = admin.http.post(
        "/admin/v1/policy/explain",
        json={"customer_id": customer_id, "request": {"model": "fable-5"}, "client_ip": DE_IP},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rule_ids"] == recorded
    assert answer.json()["trace"] == doc["trace"]
    assert admin.http.get("/admin/v1/decisions").json()["items"] == before
    actions = admin.http.get("/admin/v1/admin-actions").json()["items"]
    assert actions[-1]["action"] == "policy.explain"
    assert actions[-1]["target_id"] == customer_id


def test_explain_through_a_key_names_the_scope_refusal_the_gateway_recorded(
    gateway: Proc, admin: Admin
) -> None:
    created = admin.customer(**{**CN_ENTERPRISE, "citizenships": ["DE"]})
    customer_id = str(created["id"])
    minted = admin.http.post(f"/admin/v1/customers/{customer_id}/keys",
                             json={"name": "ci", "allowed_capabilities": ["coding"]})  # fmt: skip
    assert minted.status_code == 201, minted.text
    key_id, whole = minted.json()["id"], minted.json()["key"]
    body = {"model": "haiku-lite", "messages": [{"role": "user", "content": "book it"}],
            "tools": [{"type": "function", "function": {"name": "book", "parameters": {}}}]}
    refused = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {whole}", "x-forwarded-for": DE_IP},
        json=body, timeout=10,
    )  # fmt: skip
    assert refused.status_code == 403, refused.text
    record = admin.http.get(f"/admin/v1/decisions/{refused.headers['x-gateway-decision-id']}")
    assert record.json()["rule_ids"] == ["key-scope"], record.text

    env = gateway_env(GatewayConfig(tmp=gateway.log_path.parent, upstream_url=None))
    body_file = gateway.log_path.parent / "tools-body.json"
    body_file.write_text(json.dumps(body))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli.main", "policy", "explain", *args],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    ran = cli("--key", f"gk_{key_id}", "--body", str(body_file), "--client-ip", DE_IP, "--json")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    doc = json.loads(ran.stdout)
    assert doc["rule_ids"] == ["key-scope"] and doc["principal"]["id"] == customer_id
    scope = doc["key_scope"]["key"]
    assert scope["outcome"] == "decides" and "agentic" in scope["refuses"], scope
    assert scope["checks"][1]["holds"] is False, scope["checks"]
    leaked = cli("--key", whole, "--model", "haiku-lite")
    assert leaked.returncode == 2, leaked.stdout + leaked.stderr
    assert whole.split("_")[-1] not in leaked.stdout + leaked.stderr

    answer = admin.http.post("/admin/v1/policy/explain", json={
        "key_id": key_id, "request": {"model": "haiku-lite", "body": {
            k: v for k, v in body.items() if k != "model"}}, "client_ip": DE_IP})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["rule_ids"] == ["key-scope"]
    assert answer.json()["key_scope"]["key"] == scope
