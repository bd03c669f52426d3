"""Legal holds over HTTP: placed, listed, released (pruning around holds: test_retention.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin import audit as audit_routes
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


async def test_holds_are_strict_and_answer_rfc3339_utc(
    client: tuple[httpx.AsyncClient, dict[str, dict[str, str]]],
) -> None:
    """SPEC: times are RFC 3339 UTC. A naive ``from`` is a 422, not a guess; a misspelt
    key (``from_ts``) is a 422, not a hold silently covering every time; the answer is
    the stored hold, with ``Z`` times (SQLite hands them back without a zone)."""
    http, tokens = client
    auditor = tokens["auditor"]
    refused = [
        {"reason": "case 7", "from": "2025-12-31T22:00:00"},
        {"reason": "case 7", "from_ts": "2025-12-31T22:00:00Z", "until_ts": "2026-01-31T00:00:00Z"},
        {"reason": "case 7", "customer_id": "x" * 129},
        {"reason": "case 7", "until": "1767225600"},
    ]
    for body in refused:
        r = await http.post("/admin/v1/audit/holds", json=body, headers=auditor)
        assert r.status_code == 422, (body, r.status_code, r.text)
    assert (await http.get("/admin/v1/audit/holds", headers=auditor)).json()["items"] == []
    placed = await http.post("/admin/v1/audit/holds", headers=auditor, json={
        "reason": "case 7", "customer_id": "c" * 128, "from": "2026-01-01T00:00:00+02:00",
        "until": "2026-02-01T00:00:00Z"})
    assert placed.status_code == 201, placed.text
    doc = placed.json()
    assert doc["from"] == "2025-12-31T22:00:00Z" and doc["until"] == "2026-02-01T00:00:00Z"
    assert doc["customer_id"] == "c" * 128 and doc["reason"] == "case 7"
    assert doc["created_at"].endswith("Z") and doc["created_by"] == "auditor:t-auditor"
    listed = (await http.get("/admin/v1/audit/holds", headers=auditor)).json()["items"]
    assert listed == [doc]


async def test_public_key_times_are_rfc3339_utc(
    writer: AuditWriter, settings: Settings, engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clear = await admin_tokens(sessions, ("auditor",), "k")
    app = make_app(_Services(settings, engine, sessions, writer), audit_routes.router)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        doc = (await c.get("/admin/v1/audit/public-key",
                           headers={"authorization": f"Bearer {clear['auditor']}"})).json()
    created = doc["keys"][0]["created_at"]
    assert created.endswith("Z") and datetime.fromisoformat(created).tzinfo is not None
