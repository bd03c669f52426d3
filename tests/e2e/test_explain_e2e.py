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

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import Admin, GatewayConfig, Proc, gateway_env
from tests.support.redis_server import RedisServer

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


def _served(gateway: Proc, key: str, times: int) -> None:
    for _ in range(times):
        served = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}", "x-forwarded-for": US_IP},
            json={"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )  # fmt: skip
        assert served.status_code == 200, served.text


def _explain_cli(gateway: Proc, customer_id: str, **env: str) -> dict[str, object]:
    cli = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "policy", "explain", "--customer",
         customer_id, "--model", "haiku-lite", "--client-ip", US_IP, "--json"],
        env={**gateway_env(GatewayConfig(tmp=gateway.log_path.parent, upstream_url=None)), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    doc: dict[str, object] = json.loads(cli.stdout)
    return doc


def _limits(doc: dict[str, object]) -> dict[str, dict[str, object]]:
    quota = doc["quota"]
    assert isinstance(quota, dict)
    return {f"{q['capability']}.{q['kind']}": q for q in quota["limits"]}


def test_the_admin_api_shows_live_quota_use_without_consuming_and_the_cli_says_it_cannot(
    gateway: Proc, admin: Admin
) -> None:
    customer_id = str(admin.customer(**US_ENTERPRISE)["id"])
    _served(gateway, admin.key(customer_id), 3)
    ask = {"customer_id": customer_id, "request": {"model": "haiku-lite"}, "client_ip": US_IP}
    for _ in range(2):  # a second read sees the same use: reading consumed nothing
        doc = admin.http.post("/admin/v1/policy/explain", json=ask).json()
        assert doc["quota"]["usage"]["source"] == "memory", doc["quota"]
        rpm = _limits(doc)["default.requests_per_minute"]
        assert (rpm["limit"], rpm["used"], rpm["remaining"]) == (600, 3, 597), rpm
        assert rpm["window_seconds"] == 60 and 0 < rpm["reset_seconds"] <= 60, rpm
        assert str(rpm["resets_at"]).endswith("Z"), rpm
        tpm = _limits(doc)["default.tokens_per_minute"]
        assert int(tpm["used"]) > 0 and tpm["remaining"] == 400000 - int(tpm["used"]), tpm
    # The CLI reads the database, not this process's memory: it says so, no zeros.
    doc = _explain_cli(gateway, customer_id)
    quota = doc["quota"]
    assert isinstance(quota, dict) and quota["usage"]["source"] is None, quota
    assert "GATEWAY_REDIS_URL" in quota["usage"]["note"], quota["usage"]
    assert all("used" not in q for q in quota["limits"]), quota["limits"]


def test_the_cli_reads_quota_use_from_the_shared_redis(
    gateway_factory: GatewayFactory, tmp_path: object
) -> None:
    with RedisServer() as redis:
        gateway = gateway_factory(env={"GATEWAY_REDIS_URL": redis.url})
        admin = Admin(gateway.url)
        customer_id = str(admin.customer(**US_ENTERPRISE)["id"])
        _served(gateway, admin.key(customer_id), 2)
        doc = _explain_cli(gateway, customer_id, GATEWAY_REDIS_URL=redis.url)
        quota = doc["quota"]
        assert isinstance(quota, dict) and quota["usage"]["source"] == "redis", quota
        rpm = _limits(doc)["default.requests_per_minute"]
        assert (rpm["used"], rpm["remaining"]) == (2, 598), rpm
        text = subprocess.run(
            [sys.executable, "-m", "gateway.cli.main", "policy", "explain", "--customer",
             customer_id, "--model", "haiku-lite", "--client-ip", US_IP],
            env={**gateway_env(GatewayConfig(tmp=gateway.log_path.parent, upstream_url=None)),
                 "GATEWAY_REDIS_URL": redis.url},
            capture_output=True, text=True, timeout=60, check=False,
        ).stdout  # fmt: skip
        assert "quota use (redis store, read " in text, text
        assert "default.requests_per_minute: 2 of 600 used, 598 remaining, resets " in text, text
        api = admin.http.post("/admin/v1/policy/explain", json={
            "customer_id": customer_id, "request": {"model": "haiku-lite"}, "client_ip": US_IP,
        }).json()  # fmt: skip
        assert _limits(api)["default.requests_per_minute"]["used"] == 2, api["quota"]
