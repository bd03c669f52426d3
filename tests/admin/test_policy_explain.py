"""POST /admin/v1/policy/explain through the real app and a real SQLite database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.admin import actions, customers, keys, policy_explain
from gateway.identity.identifier import GatewayIdentifier
from tests.support.identity_app import (
    Clock,
    TestServices,
    admin_tokens,
    make_app,
    make_db,
    make_settings,
)

ROUTE = "/admin/v1/policy/explain"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    settings = make_settings(tmp_path)
    engine, sessions = await make_db(settings)
    identifier = GatewayIdentifier(sessions, settings.cache_ttl_seconds)
    services = TestServices(settings, engine, sessions, identifier, Clock())
    tokens = await admin_tokens(sessions, ("admin", "compliance", "auditor"))
    app = make_app(services, customers.router, keys.router, policy_explain.router, actions.router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as http:
        yield http, tokens
    await identifier.stop()
    await engine.dispose()


def auth(tokens: dict[str, str], role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens[role]}"}


GERMAN = {"tier": "enterprise", "kyc_level": "kyb_verified", "citizenships": ["DE"],
          "residence": "DE"}  # fmt: skip


async def test_roles_compliance_and_admin_only(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, tokens = client
    body = {"principal": GERMAN, "request": {"model": "fable-5", "origin": "DE"},
            "at": "2026-07-01T00:00:00Z"}  # fmt: skip
    for role in ("compliance", "admin"):
        response = await http.post(ROUTE, json=body, headers=auth(tokens, role))
        assert response.status_code == 200, response.text
        doc = response.json()
        assert doc["decision"] == "deny" and doc["status"] == 403
        assert doc["rule_ids"] == ["directive-frontier-us-persons-only"]
        assert doc["at"] == "2026-07-01T00:00:00Z"
    for role in ("auditor",):
        response = await http.post(ROUTE, json=body, headers=auth(tokens, role))
        assert response.status_code == 403, (role, response.text)
    assert (await http.post(ROUTE, json=body)).status_code == 401


async def test_customer_from_the_database_and_admin_action(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, tokens = client
    created = await http.post("/admin/v1/customers", headers=auth(tokens, "admin"),
                              json={"name": "Greta", "kind": "individual", **GERMAN})  # fmt: skip
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    response = await http.post(
        ROUTE, headers=auth(tokens, "compliance"),
        json={"customer_id": cid, "request": {"model": "haiku-lite", "origin": "DE"}},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["decision"] == "allow"
    assert response.json()["principal"]["id"] == cid
    logged = await http.get("/admin/v1/admin-actions", headers=auth(tokens, "auditor"))
    last = logged.json()["items"][-1]
    assert (last["action"], last["target_type"], last["target_id"]) == (
        "policy.explain", "policy_explain", cid)  # fmt: skip
    assert last["actor_role"] == "compliance"
    nobody = {"customer_id": "cus_nobody", "request": {"model": "x"}}
    unknown = await http.post(ROUTE, headers=auth(tokens, "compliance"), json=nobody)
    assert unknown.status_code == 404 and "cus_nobody" in unknown.text


@pytest.mark.parametrize(
    "body",
    [
        {"principal": GERMAN},  # no request
        {"request": {"model": "fable-5"}},  # neither customer nor principal
        {"customer_id": "c", "principal": GERMAN, "request": {"model": "fable-5"}},
        {"principal": GERMAN, "request": {"model": "fable-5", "origin": "ZZ"}},
        {"principal": GERMAN, "request": {"model": "fable-5"}, "at": "2026-07-01"},
        {"principal": GERMAN, "request": {"model": "fable-5"}, "client_ip": "not-an-ip"},
        {"principal": {**GERMAN, "tier": 3}, "request": {"model": "fable-5"}},
        {"principal": GERMAN, "request": {"model": "fable-5", "capabilities": ["nope"]}},
        {"principal": GERMAN, "request": {"model": "fable-5", "body": {}, "capabilities": []}},
    ],
)
async def test_bad_input_is_422(
    client: tuple[httpx.AsyncClient, dict[str, str]], body: dict[str, object]
) -> None:
    http, tokens = client
    response = await http.post(ROUTE, json=body, headers=auth(tokens, "compliance"))
    assert response.status_code == 422, response.text


async def test_the_customers_scoped_keys_are_judged(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, tokens = client
    created = await http.post("/admin/v1/customers", headers=auth(tokens, "admin"),
                              json={"name": "Greta", "kind": "individual", **GERMAN})  # fmt: skip
    cid = created.json()["id"]
    for scope in ({"allowed_models": ["fable-5"]}, {}):
        key = await http.post(f"/admin/v1/customers/{cid}/keys", headers=auth(tokens, "admin"),
                              json={"name": "ci", **scope})  # fmt: skip
        assert key.status_code == 201, key.text
    response = await http.post(
        ROUTE, headers=auth(tokens, "compliance"),
        json={"customer_id": cid, "request": {"model": "haiku-lite", "origin": "DE"}},
    )  # fmt: skip
    doc = response.json()
    assert doc["decision"] == "allow", doc
    scoped = doc["key_scope"]["keys"]
    assert len(scoped) == 1 and scoped[0]["allowed_models"] == ["fable-5"], doc["key_scope"]
    assert "may use 'fable-5' only" in scoped[0]["refuses"], scoped


async def test_a_key_is_explained_with_its_scope_applied_as_the_request_path_does(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, tokens = client
    created = await http.post("/admin/v1/customers", headers=auth(tokens, "admin"),
                              json={"name": "Greta", "kind": "individual", **GERMAN})  # fmt: skip
    cid = created.json()["id"]
    minted = await http.post(f"/admin/v1/customers/{cid}/keys", headers=auth(tokens, "admin"),
                             json={"name": "ci", "allowed_models": ["fable-5"]})  # fmt: skip
    key_id, secret_key = minted.json()["id"], minted.json()["key"]
    ask = {"request": {"model": "haiku-lite", "origin": "DE", "capabilities": ["coding"]},
           "at": "2026-07-01T00:00:00Z"}  # fmt: skip
    # The customer alone is served; through this key the scope refuses, as live.
    for given in (key_id, f"gk_{key_id}"):
        response = await http.post(ROUTE, headers=auth(tokens, "compliance"),
                                   json={**ask, "key_id": given})  # fmt: skip
        assert response.status_code == 200, response.text
        doc = response.json()
        assert (doc["decision"], doc["status"], doc["rule_ids"]) == ("deny", 403, ["key-scope"])
        assert doc["principal"]["id"] == cid
        key = doc["key_scope"]["key"]
        assert (key["key_id"], key["name"], key["state"]) == (key_id, "ci", "live"), key
        assert key["outcome"] == "decides", key
        assert [c["text"] for c in key["checks"]] == [
            "allowed_models [fable-5]: haiku-lite → false",
            "allowed_capabilities any: capabilities {coding} → true",
        ], key["checks"]
        by_id = {r["id"]: r for r in doc["trace"]}
        assert by_id["tier-entitlement"]["outcome"] == "matched, refused by key-scope"
    logged = (await http.get("/admin/v1/admin-actions", headers=auth(tokens, "auditor"))).json()
    assert logged["items"][-1]["after"]["key_id"] == key_id, logged["items"][-1]
    # The secret is never taken (nor echoed): only the id or its gk_ prefix.
    whole = await http.post(ROUTE, headers=auth(tokens, "compliance"),
                            json={**ask, "key_id": secret_key})  # fmt: skip
    assert whole.status_code == 422 and secret_key.split("_")[-1] not in whole.text, whole.text
    for named in (key_id, secret_key):
        both = await http.post(ROUTE, headers=auth(tokens, "compliance"),
                               json={**ask, "key_id": named, "customer_id": cid})  # fmt: skip
        assert both.status_code == 422, both.text
        assert secret_key.split("_")[-1] not in both.text, both.text
    unknown = await http.post(ROUTE, headers=auth(tokens, "compliance"),
                              json={**ask, "key_id": "nosuchkey"})  # fmt: skip
    assert unknown.status_code == 404 and "nosuchkey" in unknown.text
    # Before it was minted, a request on it would have named an unknown key.
    earlier = {**ask, "key_id": key_id, "at": "2020-01-01T00:00:00Z"}
    doc = (await http.post(ROUTE, headers=auth(tokens, "compliance"), json=earlier)).json()
    assert (doc["status"], doc["reasons"]) == (401, ["unknown gateway key"]), doc
    assert doc["key_scope"]["key"]["state"] == "not yet created", doc["key_scope"]
    # A revoked key is refused before any policy (401), as the identify stage does.
    revoked = await http.delete(f"/admin/v1/keys/{key_id}", headers=auth(tokens, "admin"))
    assert revoked.status_code == 200, revoked.text
    later = {**ask, "key_id": key_id, "at": "2099-01-01T00:00:00Z"}
    doc = (await http.post(ROUTE, headers=auth(tokens, "compliance"), json=later)).json()
    assert (doc["decision"], doc["status"], doc["rule_ids"]) == (
        "deny", 401, ["authentication-failed"]), doc  # fmt: skip
    assert doc["reasons"] == ["gateway key revoked"]
    assert doc["key_scope"]["key"]["state"] == "revoked"


async def test_quota_use_is_read_from_the_meter_for_a_customer_not_for_a_principal(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, tokens = client
    created = await http.post("/admin/v1/customers", headers=auth(tokens, "admin"),
                              json={"name": "Greta", "kind": "individual", **GERMAN})  # fmt: skip
    ask = {"request": {"model": "haiku-lite", "origin": "DE"}}
    response = await http.post(ROUTE, headers=auth(tokens, "compliance"),
                               json={**ask, "customer_id": created.json()["id"]})  # fmt: skip
    quota = response.json()["quota"]
    assert quota["usage"]["source"] == "memory" and quota["usage"]["note"] is None, quota
    rpm = next(q for q in quota["limits"] if q["kind"] == "requests_per_minute")
    assert (rpm["used"], rpm["remaining"], rpm["resets_at"]) == (0, rpm["limit"], None), rpm
    inline = await http.post(ROUTE, headers=auth(tokens, "compliance"),
                             json={**ask, "principal": GERMAN})  # fmt: skip
    quota = inline.json()["quota"]
    assert quota["usage"]["source"] is None and "inline principal" in quota["usage"]["note"]
    assert all("used" not in q for q in quota["limits"]), quota


@pytest.mark.parametrize("depth", [300, 900])
async def test_a_deeply_nested_request_body_is_a_422_not_a_500(
    client: tuple[httpx.AsyncClient, dict[str, str]], depth: int
) -> None:
    """The proxy answers such a body 400 (gateway/proxy/nesting.py); explain
    parses it with the same parser, so it must say why, not fail."""
    http, tokens = client
    nested = '{"a":' * depth + "1" + "}" * depth
    raw = ('{"principal": {"tier": "enterprise", "kyc_level": "kyb_verified", '
           '"citizenships": ["DE"], "residence": "DE"}, "request": {"model": "fable-5", '
           '"origin": "DE", "body": {"messages": [], "metadata": ' + nested + "}}}")
    response = await http.post(ROUTE, content=raw, headers={
        **auth(tokens, "compliance"), "content-type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    assert "nested" in response.text or "recursion" in response.text.lower(), response.text[:300]
