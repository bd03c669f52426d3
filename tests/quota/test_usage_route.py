"""GET /admin/v1/customers/{id}/usage over a real SQLite DB, the default policy
bundle and a memory meter, through the admin routers' real auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.admin import customers, usage
from gateway.admin.auth import create_admin_token
from gateway.identity.identifier import GatewayIdentifier
from gateway.policy.compiled import CompiledBundle
from gateway.policy.loader import load_bundle
from gateway.policy.quota_plans import quota_plan
from gateway.quota.memory import MemoryStore
from gateway.quota.meter import Meter
from tests.support import identity_app
from tests.support.identity_app import Clock, make_app, make_db, make_settings

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@dataclass
class FixedPolicy:
    current: CompiledBundle


@dataclass
class UsageServices(identity_app.TestServices):
    policy: Any = None
    meter: Any = None


@dataclass
class Env:
    client: httpx.AsyncClient
    services: UsageServices
    tokens: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = make_settings(tmp_path)
    engine, sessions = await make_db(settings)
    identifier = GatewayIdentifier(sessions, settings.cache_ttl_seconds)
    clock = Clock()
    services = UsageServices(settings, engine, sessions, identifier, clock)
    services.policy = FixedPolicy(load_bundle(POLICIES))
    services.meter = Meter(MemoryStore(), clock=lambda: clock.now.timestamp())
    tokens = {}
    async with sessions() as session:
        for role in ("compliance", "auditor"):
            _, tokens[role] = await create_admin_token(session, role, f"test-{role}")
        await session.commit()
    app = make_app(services, customers.router, usage.router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        yield Env(client, services, tokens)
    await identifier.stop()
    await engine.dispose()


async def _customer(env: Env, **record: object) -> None:
    body = {"name": "Acme Analytics", "kind": "organization", "residence": "DE", **record}
    response = await env.client.post(
        "/admin/v1/customers", json=body, headers=env.auth("compliance")
    )
    assert response.status_code == 201, response.text


def _bucket(body: dict[str, Any], capability: str, kind: str) -> dict[str, Any]:
    found = [b for b in body["buckets"] if (b["capability"], b["kind"]) == (capability, kind)]
    assert len(found) == 1, body
    bucket: dict[str, Any] = found[0]
    return bucket


async def test_usage_shows_every_bucket_of_the_effective_tier(env: Env) -> None:
    await _customer(env, id="acme", tier="enterprise", kyc_level="kyb_verified")
    bundle = env.services.policy.current
    plan, closed = quota_plan(bundle, "enterprise", frozenset({"agentic"}))
    assert closed is None
    for _ in range(3):
        admission = await env.services.meter.admit("acme", plan, True, 100, env.services.clock())
        assert admission.allowed

    response = await env.client.get("/admin/v1/customers/acme/usage", headers=env.auth("auditor"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tier"] == "enterprise" and body["tier_demotion"] is None
    assert body["policy_version"] == bundle.version
    assert _bucket(body, "agentic", "requests_per_minute") == {
        "capability": "agentic",
        "kind": "requests_per_minute",
        "limit": 120,
        "used": 3,
        "remaining": 117,
        "reset_seconds": 60,
        "window_seconds": 60,
    }
    assert _bucket(body, "agentic", "concurrent_streams")["used"] == 3
    assert _bucket(body, "default", "requests_per_minute")["used"] == 0
    assert _bucket(body, "cyber", "tokens_per_day")["remaining"] == 2_000_000


async def test_a_demoted_customer_is_shown_its_public_buckets(env: Env) -> None:
    await _customer(env, id="lapsed", tier="enterprise", kyc_level="email_verified")
    response = await env.client.get(
        "/admin/v1/customers/lapsed/usage", headers=env.auth("compliance")
    )
    body = response.json()
    assert body["tier"] == "public" and body["assigned_tier"] == "enterprise"
    assert "kyb_verified" in body["tier_demotion"]
    assert _bucket(body, "default", "requests_per_minute")["limit"] == 20


async def test_unknown_customer_and_missing_token(env: Env) -> None:
    missing = await env.client.get("/admin/v1/customers/nobody/usage", headers=env.auth("auditor"))
    assert missing.status_code == 404
    anonymous = await env.client.get("/admin/v1/customers/nobody/usage")
    assert anonymous.status_code == 401
