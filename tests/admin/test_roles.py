"""Every admin route x every role: 2xx for allowed roles, 403 otherwise, 401 without."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.admin.auth import create_admin_token
from gateway.identity.keys import create_api_key
from tests.admin.conftest import AdminEnv
from tests.identity.conftest import ACTOR, NOW

ADMIN_ONLY = {"admin", "bootstrap"}
CUSTOMER_ROLES = {"admin", "bootstrap", "compliance"}
AUDIT_ROLES = {"admin", "bootstrap", "auditor"}

# (method, path template, json body, roles allowed, success status)
ROUTES: list[tuple[str, str, Any, set[str], int]] = [
    ("POST", "/admin/v1/customers", {"name": "Role Test Person"}, CUSTOMER_ROLES, 201),
    ("GET", "/admin/v1/customers", None, CUSTOMER_ROLES, 200),
    ("GET", "/admin/v1/customers/c1", None, CUSTOMER_ROLES, 200),
    ("PATCH", "/admin/v1/customers/c1", {"attributes": ["x"]}, CUSTOMER_ROLES, 200),
    ("GET", "/admin/v1/customers/c1/history", None, CUSTOMER_ROLES, 200),
    ("POST", "/admin/v1/customers/c1/keys", {}, ADMIN_ONLY, 201),
    ("DELETE", "/admin/v1/keys/{key_id}", None, ADMIN_ONLY, 200),
    ("POST", "/admin/v1/tokens", {"role": "auditor", "name": "t"}, ADMIN_ONLY, 201),
    ("DELETE", "/admin/v1/tokens/{token_id}", None, ADMIN_ONLY, 200),
    ("GET", "/admin/v1/audit/farms", None, AUDIT_ROLES, 200),
]
ROLES = ["admin", "bootstrap", "compliance", "auditor"]


async def _prepare(env: AdminEnv) -> dict[str, str]:
    r = await env.client.post(
        "/admin/v1/customers", json={"id": "c1", "name": "Carol One"}, headers=env.auth("admin")
    )
    assert r.status_code == 201, r.text
    async with env.services.sessions() as session:
        key, _ = await create_api_key(session, "c1", ACTOR, NOW)
        token, _ = await create_admin_token(session, "auditor", "throwaway")
        await session.commit()
    return {"key_id": key.id, "token_id": token.id}


@pytest.mark.parametrize(("method", "path", "body", "allowed", "ok"), ROUTES)
async def test_route_roles(
    env: AdminEnv, method: str, path: str, body: Any, allowed: set[str], ok: int
) -> None:
    url = path.format(**await _prepare(env))
    for role in ROLES:
        r = await env.client.request(method, url, json=body, headers=env.auth(role))
        expected = ok if role in allowed else 403
        assert r.status_code == expected, (role, r.text)
        if expected == 403:
            assert "detail" in r.json()
    for headers in ({}, {"authorization": "Bearer gat_nope_nope"}, {"authorization": "Basic x"}):
        r = await env.client.request(method, url, json=body, headers=headers)
        assert r.status_code == 401 and r.json()["detail"], r.text


def test_readme_says_who_may_read_customer_usage() -> None:
    """The README's admin API paragraph names the roles the routes admit: usage
    is readable by auditors too (deliberate, see gateway/admin/usage.py; the
    route's own role test is tests/quota/test_usage_route.py)."""
    from pathlib import Path

    text = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    section = text[text.index("## Admin API") :]
    customers = section[section.index("Customers (") : section.index("Keys (")]
    usage = customers[customers.index("/customers/{id}/usage") :]
    assert "`auditor`" in usage.split(".")[0], customers
