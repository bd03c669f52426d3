"""HEAD of the decision export answers its headers without reading the log."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin import decisions as decision_routes
from gateway.audit.writer import AuditWriter
from gateway.proxy.routes import ProxyRoutes
from gateway.settings import Settings
from tests.audit.conftest import make_record
from tests.audit.test_routes import _Services
from tests.support.identity_app import admin_tokens, make_app

RECORDS = 2000


async def test_head_of_an_export_sends_the_headers_and_reads_no_record(
    writer: AuditWriter, settings: Settings, engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """HEAD ran the whole export and threw the body away: on a large log, a
    probe (or a client checking the content type first) cost a full read of
    every record. The GET's status and headers, and no record read."""
    for start in range(0, RECORDS, 500):
        await asyncio.gather(*(writer.record(make_record(i)) for i in range(start, start + 500)))
    clear = await admin_tokens(sessions, ("auditor",), "t")
    auditor = {"authorization": f"Bearer {clear['auditor']}"}
    app = make_app(_Services(settings, engine, sessions, writer), decision_routes.router)  # type: ignore[arg-type]
    reads: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "audit_records" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    # The real outer app: it answers HEAD on the admin routes (gateway.head).
    transport = httpx.ASGITransport(app=ProxyRoutes(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        for fmt, media in (("jsonl", "application/x-ndjson"), ("csv", "text/csv; charset=utf-8")):
            got = await c.get("/admin/v1/decisions/export", params={"format": fmt},
                              headers=auditor)
            assert got.status_code == 200 and len(got.content.splitlines()) > RECORDS
            event.listen(engine.sync_engine, "before_cursor_execute", note)
            try:
                head = await c.head("/admin/v1/decisions/export", params={"format": fmt},
                                    headers=auditor)
            finally:
                event.remove(engine.sync_engine, "before_cursor_execute", note)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-type"] == media
            assert head.headers["x-gateway-export-mode"] == got.headers["x-gateway-export-mode"]
            disposition = head.headers["content-disposition"]
            assert disposition.startswith('attachment; filename="decisions-')
            assert reads == [], reads[:2]
    # Refusals are the GET's: a HEAD without a token is still a 401.
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        assert (await c.head("/admin/v1/decisions/export")).status_code == 401
