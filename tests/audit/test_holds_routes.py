"""Legal holds over HTTP: placed, listed, released (pruning around holds: test_retention.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin import holds as hold_routes
from gateway.audit.writer import AuditWriter
from gateway.settings import Settings
from tests.audit.test_routes import _Services
from tests.support.identity_app import admin_tokens, make_app


@pytest.fixture
async def client(
    writer: AuditWriter,
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, dict[str, str]]]]:
    clear = await admin_tokens(sessions, ("auditor", "compliance"), "t")
    tokens = {role: {"authorization": f"Bearer {token}"} for role, token in clear.items()}
    app = make_app(_Services(settings, engine, sessions, writer), hold_routes.router)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c, tokens


async def test_place_list_release(
    client: tuple[httpx.AsyncClient, dict[str, dict[str, str]]],
) -> None:
    http, tokens = client
    assert (await http.get("/admin/v1/audit/holds")).status_code == 401
    start = datetime(2026, 1, 1, tzinfo=UTC)
    body = {
        "reason": "case 42",
        "customer_id": "cust-1",
        "from": start.isoformat(),
        "until": (start + timedelta(days=30)).isoformat(),
    }
    placed = await http.post("/admin/v1/audit/holds", json=body, headers=tokens["auditor"])
    assert placed.status_code == 201, placed.text
    hold_id = placed.json()["id"]
    listed = (await http.get("/admin/v1/audit/holds", headers=tokens["compliance"])).json()
    assert [h["id"] for h in listed["items"]] == [hold_id]
    item = listed["items"][0]
    assert item["customer_id"] == "cust-1" and item["reason"] == "case 42"
    assert item["created_by"] == "auditor:t-auditor"
    backwards = {**body, "until": (start - timedelta(days=1)).isoformat()}
    bad = await http.post("/admin/v1/audit/holds", json=backwards, headers=tokens["auditor"])
    assert bad.status_code == 422
    lifted = await http.delete(f"/admin/v1/audit/holds/{hold_id}", headers=tokens["auditor"])
    assert lifted.status_code == 200
    again = await http.delete(f"/admin/v1/audit/holds/{hold_id}", headers=tokens["auditor"])
    assert again.status_code == 404
    assert (await http.get("/admin/v1/audit/holds", headers=tokens["auditor"])).json()[
        "items"
    ] == []
