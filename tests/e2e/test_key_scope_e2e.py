"""Keys narrowed below their customer's entitlement, through the real server.

A customer hands one key to a CI job and another to a chat product: each key
should reach only what its use needs, so that a leaked CI key cannot drive the
strongest model or an agent loop. ``allowed_models`` and
``allowed_capabilities`` on a key narrow what the tier allows; they never
widen it.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.e2e.conftest import US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

# A US citizen on the research tier: fable-5 and tool use are open to her.
US_RESEARCHER = {"name": "Ada Quill", "kind": "individual", "citizenships": ["US"],
                 "residence": "US", "kyc_level": "id_verified", "tier": "research",
                 "attributes": ["academic_affiliation"]}  # fmt: skip
TOOLS = [{"type": "function", "function": {"name": "run", "parameters": {"type": "object"}}}]


def client(gateway: Proc, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                         default_headers={"x-forwarded-for": US_IP})


def scoped_key(admin: Admin, customer_id: str, **scope: object) -> httpx.Response:
    return admin.http.post(f"/admin/v1/customers/{customer_id}/keys", json=scope)


def test_a_key_reaches_only_its_models_and_capabilities(gateway: Proc, admin: Admin) -> None:
    customer = str(admin.customer(**US_RESEARCHER)["id"])
    created = scoped_key(admin, customer, name="chat product", allowed_models=["haiku-lite"],
                         allowed_capabilities=["coding"])
    assert created.status_code == 201, created.text
    assert created.json()["allowed_models"] == ["haiku-lite"]
    sdk = client(gateway, created.json()["key"])
    hi = [{"role": "user", "content": "hi"}]

    # Inside the scope: served as before.
    assert sdk.chat.completions.create(model="haiku-lite", messages=hi).choices
    # A model the tier allows but the key does not: refused, recorded, named.
    with pytest.raises(openai.PermissionDeniedError) as refused:
        sdk.chat.completions.create(model="fable-5", messages=hi)
    assert refused.value.body["code"] == "key-scope", refused.value.body  # type: ignore[index]
    assert "haiku-lite" in refused.value.message
    decision_id = refused.value.response.headers["x-gateway-decision-id"]
    record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    assert record["rule_ids"] == ["key-scope"] and record["decision"] == "deny", record
    # A capability the key was not given (tool use is agentic): refused.
    with pytest.raises(openai.PermissionDeniedError) as agentic:
        sdk.chat.completions.create(model="haiku-lite", messages=hi, tools=TOOLS)  # type: ignore[arg-type]
    assert agentic.value.body["code"] == "key-scope", agentic.value.body  # type: ignore[index]
    assert "agentic" in agentic.value.message
    # The model list shows what this key may use, not the whole tier.
    assert [m.id for m in sdk.models.list()] == ["haiku-lite"]

    # The customer's unscoped key still reaches everything its tier allows.
    whole = client(gateway, admin.key(customer))
    assert whole.chat.completions.create(model="fable-5", messages=hi).choices
    assert whole.chat.completions.create(model="haiku-lite", messages=hi, tools=TOOLS).choices  # type: ignore[arg-type]
    assert {m.id for m in whole.models.list()} == {"haiku-lite", "fable-5"}

    # The scope is shown with the key, never the secret.
    listed = admin.http.get(f"/admin/v1/customers/{customer}/keys").json()["items"]
    scoped = next(k for k in listed if k["name"] == "chat product")
    assert scoped["allowed_capabilities"] == ["coding"] and "key" not in scoped, scoped


def test_a_scope_naming_what_the_policy_does_not_define_is_refused(admin: Admin) -> None:
    customer = str(admin.customer(**US_RESEARCHER)["id"])
    cases = [
        # A typo would otherwise make a key that can use nothing, found out in production.
        ({"allowed_models": ["haiku-light"]}, "allowed_models", "haiku-lite"),
        ({"allowed_capabilities": ["agentc"]}, "allowed_capabilities", "agentic"),
        # An empty list is a key for nothing: leave the field out for no narrowing.
        ({"allowed_models": []}, "allowed_models", "at least 1"),
    ]
    for scope, field, hint in cases:
        response = scoped_key(admin, customer, **scope)
        assert response.status_code == 422, (scope, response.text)
        assert field in response.text and hint in response.text, response.text
        assert "extra_forbidden" not in response.text, response.text
