"""Query pages, replay facts, streamed exports and their offline verification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.export import Exporter, ExportFormat
from gateway.audit.ids import new_id
from gateway.audit.offline import verify_export
from gateway.audit.query import (
    DecisionFilters,
    get_decision,
    iter_replay_facts,
    list_decisions,
)
from gateway.audit.record import OutcomeRecord
from gateway.audit.writer import AuditWriter
from tests.audit.conftest import make_record


@pytest.fixture
async def filled(writer: AuditWriter) -> list[str]:
    ids = []
    for i in range(45):
        rec = make_record(i)
        await writer.record(rec)
        ids.append(rec.id)
        if i % 10 == 0:
            await writer.record_outcome(OutcomeRecord(new_id(), datetime.now(UTC), rec.id, 200,
                                                      12, 34, 5.5))
    await writer.record_event("policy_reload", {"old_version": "a", "new_version": "b"})
    return ids


async def test_pages_are_keyset_and_filtered(
    filled: list[str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        items, cursor = await list_decisions(sessions, DecisionFilters(), cursor, limit=7)
        seen += [i["id"] for i in items]
        if cursor is None:
            break
    assert seen == sorted(filled)
    items, _ = await list_decisions(sessions, DecisionFilters(customer_id="cust-3"), None, 100)
    assert {i["customer_id"] for i in items} == {"cust-3"} and len(items) == 9
    items, _ = await list_decisions(
        sessions, DecisionFilters(rule_id="directive-frontier-us-persons-only", model="fable-5"))
    assert items and all(i["decision"] == "deny" and i["model"] == "fable-5" for i in items)
    items, _ = await list_decisions(sessions, DecisionFilters(decision="deny", origin="us"))
    assert items and all(i["origin_country"] == "US" for i in items)
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert (await list_decisions(sessions, DecisionFilters(from_ts=later)))[0] == []
    assert "hash" in items[0] and "prev_hash" in items[0] and "facts" in items[0]


async def check_citizenship_filter(writer: AuditWriter,
                                   sessions: async_sessionmaker[AsyncSession]) -> None:
    """Shared by SQLite (here) and PostgreSQL (test_postgres.py): the auditor's
    question after a directive, "which requests by citizens of IR were served?",
    matches any of a principal's citizenships and nothing else in the record
    (an origin or residence of IR, a model or rule id spelling IR)."""
    dual = make_record(1, citizenships=["IR", "US"], customer_id="dual")
    only = make_record(3, citizenships=["IR"], customer_id="only")  # a deny
    other = make_record(4, citizenships=["DE"], residence="IR", origin_country="IR",
                        customer_id="IR", model="IR", rule_ids=["IR"])
    none = make_record(5, citizenships=[], customer_id="org")
    for rec in (dual, only, other, none):
        await writer.record(rec)
    items, _ = await list_decisions(sessions, DecisionFilters(citizenship="IR"), None, 100)
    assert sorted(i["customer_id"] for i in items) == ["dual", "only"]
    served, _ = await list_decisions(
        sessions, DecisionFilters(citizenship="IR", decision="allow"), None, 100)
    assert [i["customer_id"] for i in served] == ["dual"]
    items, _ = await list_decisions(sessions, DecisionFilters(citizenship="US"), None, 100)
    assert [i["customer_id"] for i in items] == ["dual"]
    assert (await list_decisions(sessions, DecisionFilters(citizenship="KP"), None, 100))[0] == []


async def test_decisions_filter_by_citizenship(
    writer: AuditWriter, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await check_citizenship_filter(writer, sessions)


async def test_get_with_outcomes(
    filled: list[str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    item = await get_decision(sessions, filled[10])
    assert item is not None
    assert [o["tokens_out"] for o in item["outcomes"]] == [34]
    assert await get_decision(sessions, "nope") is None


async def test_replay_facts(filled: list[str], sessions: async_sessionmaker[AsyncSession]) -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    items = [i async for i in iter_replay_facts(sessions, since)]
    assert [i["id"] for i in items] == sorted(filled)
    assert items[0]["facts"]["principal"]["tier"] == "enterprise"


async def _export(sessions: async_sessionmaker[AsyncSession], path: Path, fmt: ExportFormat,
                  filters: DecisionFilters) -> Exporter:
    exporter = Exporter(sessions, filters, fmt, chunk=8)
    await exporter.plan()
    with path.open("wb") as fh:
        async for line in exporter.lines():
            fh.write(line)
    if fmt == "csv":
        path.with_name(path.name + ".manifest.json").write_bytes(orjson.dumps(exporter.manifest))
    return exporter


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_full_export_verifies_offline(
    filled: list[str], writer: AuditWriter, sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path, fmt: ExportFormat,
) -> None:
    path = tmp_path / f"export.{fmt}"
    exporter = await _export(sessions, path, fmt, DecisionFilters())
    assert exporter.manifest["record_count"] == 45 + 5 + 1
    report = verify_export(path, trusted_keys=[writer.signer.public_raw])
    assert report.ok, report.problems
    assert report.records == 51 and report.proven == 50 and report.unsigned == 1


async def test_tampered_export_fails_offline(
    filled: list[str], writer: AuditWriter, sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.jsonl"
    await _export(sessions, path, "jsonl", DecisionFilters())
    lines = path.read_bytes().splitlines(keepends=True)
    item = orjson.loads(lines[4])
    item["decision"] = "allow" if item["decision"] == "deny" else "deny"
    lines[4] = orjson.dumps(item) + b"\n"
    path.write_bytes(b"".join(lines))
    report = verify_export(path, trusted_keys=[writer.signer.public_raw])
    assert not report.ok
    assert report.problems[0].kind == "edited" and "line 5" in report.problems[0].message
    # Dropping a line is a gap.
    path.write_bytes(b"".join(lines[:3] + lines[5:]))
    report = verify_export(path, trusted_keys=[writer.signer.public_raw])
    assert any(p.kind == "gap" for p in report.problems)


async def test_filtered_export_is_consistent_but_unlinked(
    filled: list[str], writer: AuditWriter, sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    path = tmp_path / "cust.jsonl"
    exporter = await _export(sessions, path, "jsonl", DecisionFilters(customer_id="cust-1"))
    assert exporter.manifest["mode"] == "filtered"
    report = verify_export(path, trusted_keys=[writer.signer.public_raw])
    assert report.ok, report.problems
    assert report.records == 9 and report.proven + report.unlinked == 9
