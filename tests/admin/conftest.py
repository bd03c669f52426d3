from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.admin import actions, customers, farms, keys, kyc_webhook
from gateway.identity.identifier import GatewayIdentifier
from gateway.kyc.screening import screener_from_path
from tests.support.identity_app import (
    Clock,
    TestServices,
    admin_tokens,
    make_app,
    make_db,
    make_settings,
)

DATA = Path(__file__).resolve().parents[1] / "data"
BOOTSTRAP = "bootstrap-admin-token-for-tests-0123456789"
WEBHOOK_SECRET = "wbhsec_current"
WEBHOOK_SECRET_OLD = "wbhsec_previous"


@dataclass
class AdminEnv:
    client: httpx.AsyncClient
    services: TestServices
    identifier: GatewayIdentifier
    clock: Clock
    tokens: dict[str, str]
    """Role -> clear bearer token."""

    def auth(self, role: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[AdminEnv]:
    settings = make_settings(
        tmp_path,
        admin_token=BOOTSTRAP,
        kyc_webhook_secret=WEBHOOK_SECRET,
        kyc_webhook_secret_previous=WEBHOOK_SECRET_OLD,
    )
    engine, sessions = await make_db(settings)
    identifier = GatewayIdentifier(sessions, settings.cache_ttl_seconds)
    clock = Clock()
    services = TestServices(settings, engine, sessions, identifier, clock)
    services.extras["screener"] = screener_from_path(DATA / "sanctions_sample.csv", 0.9)
    tokens = {"bootstrap": BOOTSTRAP}
    tokens.update(await admin_tokens(sessions, ("admin", "compliance", "auditor")))
    app = make_app(services, customers.router, keys.router, kyc_webhook.router, actions.router,
                   farms.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield AdminEnv(client, services, identifier, clock, tokens)
    await identifier.stop()
    await engine.dispose()
