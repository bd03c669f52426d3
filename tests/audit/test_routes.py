"""The auditor's HTTP routes, through the real admin-token dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin import audit as audit_routes
from gateway.admin import decisions as decision_routes
from gateway.audit.offline import verify_export
from gateway.audit.tables import audit_decision_rules, audit_records
from gateway.audit.writer import AuditWriter
from gateway.settings import Settings
from tests.audit.conftest import make_record
from tests.support.identity_app import PeerLocator, admin_tokens, make_app


@dataclass
class _Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    audit: AuditWriter
    locator: PeerLocator = field(default_factory=PeerLocator)
    extras: dict[str, Any] = field(default_factory=dict)

    def clock(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
async def client(
    writer: AuditWriter, settings: Settings, engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, dict[str, str]]]]:
    for i in range(30):
        await writer.record(make_record(i))
    clear = await admin_tokens(sessions, ("auditor", "compliance"), "t")
    tokens = {role: {"authorization": f"Bearer {token}"} for role, token in clear.items()}
    services = _Services(settings, engine, sessions, writer)
    app = make_app(services, decision_routes.router, audit_routes.router)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as c:
        yield c, tokens


async def test_roles(client: tuple[httpx.AsyncClient, dict[str, dict[str, str]]]) -> None:
    c, tokens = client
    assert (await c.get("/admin/v1/decisions")).status_code == 401
    assert (await c.get("/admin/v1/decisions", headers=tokens["compliance"])).status_code == 403
    assert (await c.get("/admin/v1/audit/verify", headers=tokens["compliance"])).status_code == 403


async def test_list_get_and_pages(
    client: tuple[httpx.AsyncClient, dict[str, dict[str, str]]],
) -> None:
    c, tokens = client
    got: list[str] = []
    params: dict[str, Any] = {"limit": 4, "customer_id": "cust-2"}
    while True:
        r = await c.get("/admin/v1/decisions", params=params, headers=tokens["auditor"])
        assert r.status_code == 200, r.text
        doc = r.json()
        got += [i["id"] for i in doc["items"]]
        if doc["next_cursor"] is None:
            break
        params["cursor"] = doc["next_cursor"]
    assert len(got) == 6 and got == sorted(got)
    one = await c.get(f"/admin/v1/decisions/{got[0]}", headers=tokens["auditor"])
    assert one.status_code == 200 and one.json()["outcomes"] == []
    assert (await c.get("/admin/v1/decisions/NOPE", headers=tokens["auditor"])).status_code == 404
    bad = await c.get("/admin/v1/decisions", params={"origin": "not a country"},
                      headers=tokens["auditor"])
    assert bad.status_code == 422


async def test_export_stream_verifies(
    client: tuple[httpx.AsyncClient, dict[str, dict[str, str]]], writer: AuditWriter,
    tmp_path: Path,
) -> None:
    c, tokens = client
    r = await c.get("/admin/v1/decisions/export", params={"format": "jsonl"},
                    headers=tokens["auditor"])
    assert r.status_code == 200
    path = tmp_path / "api.jsonl"
    path.write_bytes(r.content)
    assert orjson.loads(r.content.splitlines()[-1])["kind"] == "manifest"
    assert r.headers["x-gateway-export-manifest"] == "last-line"
    report = verify_export(path, trusted_keys=[writer.signer.public_raw])
    assert report.ok and report.records == 30
    csv_r = await c.get("/admin/v1/decisions/export", params={"format": "csv", "model": "fable-5"},
                        headers=tokens["auditor"])
    assert csv_r.status_code == 200 and csv_r.text.startswith("id,kind,ts")
    # README: an HTTP CSV export has no manifest (verify JSONL, or the CLI's CSV + sidecar).
    assert csv_r.headers["x-gateway-export-manifest"] == "none"
    assert len(csv_r.text.strip().splitlines()) == 1 + 15


async def test_verify_route(
    client: tuple[httpx.AsyncClient, dict[str, dict[str, str]]], engine: AsyncEngine,
) -> None:
    c, tokens = client
    r = await c.get("/admin/v1/audit/verify", headers=tokens["auditor"])
    assert r.status_code == 200 and r.json()["ok"] is True
    async with engine.begin() as conn:
        await conn.execute(update(audit_records).where(audit_records.c.seq == 9)
                           .values(model="tampered"))
    doc = (await c.get("/admin/v1/audit/verify", headers=tokens["auditor"])).json()
    assert doc["ok"] is False
    assert doc["first_problem"]["seq"] == 9 and doc["first_problem"]["kind"] == "column_mismatch"
    keys = (await c.get("/admin/v1/audit/public-key", headers=tokens["auditor"])).json()
    assert keys["keys"][0]["public_key_pem"].startswith("-----BEGIN PUBLIC KEY")


async def test_verify_route_checks_the_rule_index(
    client: tuple[httpx.AsyncClient, dict[str, dict[str, str]]], engine: AsyncEngine,
) -> None:
    """A rule-index row removed hides a decision from ``?rule_id=``: verify says where."""
    c, tokens = client
    listed = await c.get("/admin/v1/decisions", params={"rule_id": "tier-entitlement"},
                         headers=tokens["auditor"])
    hidden = listed.json()["items"][0]
    async with engine.begin() as conn:
        await conn.execute(delete(audit_decision_rules)
                           .where(audit_decision_rules.c.decision_id == hidden["id"]))
    doc = (await c.get("/admin/v1/audit/verify", headers=tokens["auditor"])).json()
    assert doc["ok"] is False
    problem = doc["first_problem"]
    assert (problem["kind"], problem["seq"], problem["record_id"]) == (
        "rule_index", hidden["seq"], hidden["id"])


@pytest.mark.parametrize("path", ["/admin/v1/decisions", "/admin/v1/decisions/export"])
async def test_time_filters_are_rfc3339_with_a_zone(
    client: tuple[httpx.AsyncClient, dict[str, dict[str, str]]], path: str,
) -> None:
    """Naive times (alone or mixed with zoned ones), bare dates and unix seconds are
    422 naming the parameter, like the other filter errors; so is a backwards range."""
    c, tokens = client
    refused = [
        ({"from": "2026-01-01T00:00:00", "to": "2026-02-01T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00"}, "to"),
        ({"from": "2026-01-01"}, "from"),
        ({"to": "1767225600"}, "to"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
        ({"origin": "USA"}, "origin"),
    ]
    for params, name in refused:
        r = await c.get(path, params=params, headers=tokens["auditor"])
        assert r.status_code == 422, (params, r.status_code, r.text)
        assert [e["loc"] for e in r.json()["detail"]] == [["query", name]], r.text
    ok = await c.get(path, params={"from": "2000-01-01T01:00:00+01:00",
                                   "to": "2100-01-01T00:00:00z"}, headers=tokens["auditor"])
    assert ok.status_code == 200, ok.text


async def test_unknown_origin_codes_and_bad_cursors_are_refused(
    client: tuple[httpx.AsyncClient, dict[str, dict[str, str]]],
) -> None:
    """``XX`` is shaped like a country code but is none (README: a bad origin code is a
    422 naming it), nor ``UA-99`` a region; a cursor this route never handed out is a
    400, as on /customers and /admin-actions, not an empty page that reads as "no
    more records"."""
    c, tokens = client
    auditor = tokens["auditor"]
    for path in ("/admin/v1/decisions", "/admin/v1/decisions/export"):
        for origin in ("XX", "UA-99", "ZZ-1"):
            r = await c.get(path, params={"origin": origin}, headers=auditor)
            assert r.status_code == 422, (path, origin, r.text)
            assert [e["loc"] for e in r.json()["detail"]] == [["query", "origin"]]
    lower = await c.get("/admin/v1/decisions", params={"origin": "de"}, headers=auditor)
    assert lower.status_code == 200 and len(lower.json()["items"]) == 15
    for cursor in ("garbage!!", "0" * 25, "8" + "0" * 25, "I" * 26):
        r = await c.get("/admin/v1/decisions", params={"cursor": cursor}, headers=auditor)
        assert (r.status_code, r.json()) == (400, {"detail": "invalid cursor"}), cursor
    page = (await c.get("/admin/v1/decisions", params={"limit": 2}, headers=auditor)).json()
    more = await c.get("/admin/v1/decisions", params={"limit": 2, "cursor": page["next_cursor"]},
                       headers=auditor)
    assert more.status_code == 200 and len(more.json()["items"]) == 2


async def test_decisions_and_exports_filter_by_citizenship(
    client: tuple[httpx.AsyncClient, dict[str, dict[str, str]]],
) -> None:
    """``citizenship=`` on the list and the export (the same filter as
    ``gateway audit export --citizenship``); a code that is no country, or a
    region, is a 422 naming it."""
    c, tokens = client
    auditor = tokens["auditor"]
    listed = await c.get("/admin/v1/decisions", params={"citizenship": "de", "limit": 500},
                         headers=auditor)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert items and all("DE" in i["citizenships"] for i in items)
    exported = await c.get("/admin/v1/decisions/export", params={"citizenship": "DE"},
                           headers=auditor)
    lines = [orjson.loads(x) for x in exported.text.splitlines()]
    assert len([x for x in lines if x.get("kind") == "decision"]) == len(items)
    nobody = await c.get("/admin/v1/decisions", params={"citizenship": "KP"}, headers=auditor)
    assert nobody.json()["items"] == []
    for path in ("/admin/v1/decisions", "/admin/v1/decisions/export"):
        for code in ("XX", "UA-43", "IRN"):
            r = await c.get(path, params={"citizenship": code}, headers=auditor)
            assert r.status_code == 422, (path, code, r.text)
            assert [e["loc"] for e in r.json()["detail"]] == [["query", "citizenship"]]
