"""Pruning whole checkpointed segments behind a signed tombstone; legal holds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.retention import add_hold, prune, release_hold
from gateway.audit.tables import audit_records
from gateway.audit.verify import verify_log
from gateway.audit.writer import AuditWriter
from gateway.settings import Settings
from tests.audit.conftest import make_record

OLD = datetime(2019, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _fill(writer_factory: Callable[..., Any], settings: Settings) -> AuditWriter:
    clock = Clock(OLD)
    writer: AuditWriter = await writer_factory(settings, clock=clock)
    for i in range(25):
        await writer.record(make_record(i, ts=OLD + timedelta(minutes=i)))
    clock.now = datetime.now(UTC)
    for i in range(25, 30):
        await writer.record(make_record(i))
    return writer


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(audit_records)
        return int((await conn.execute(query)).scalar_one())


async def test_prune_expired_segments_keeps_chain_verifiable(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine,
) -> None:
    writer = await _fill(writer_factory, settings)
    now = datetime.now(UTC)
    planned = await prune(engine, writer.signer, 5 * 365, now, dry_run=True)
    assert [(r.through_seq, r.deleted) for r in planned] == [(20, 20)]
    assert await _count(engine) == 30
    results = await prune(engine, writer.signer, 5 * 365, now)
    assert [(r.through_seq, r.deleted) for r in results] == [(20, 20)]
    assert await _count(engine) == 10
    report = await verify_log(engine)
    assert report.ok, report.problems
    assert report.nodes[0].pruned_through == 20 and report.nodes[0].first_seq == 21
    # The writer goes on extending the same chain.
    await writer.record(make_record(99))
    assert (await verify_log(engine)).ok
    # Nothing more is expired: a second prune is a no-op.
    assert await prune(engine, writer.signer, 5 * 365, now) == []


async def test_legal_hold_blocks_deletion(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine,
) -> None:
    writer = await _fill(writer_factory, settings)
    now = datetime.now(UTC)
    # make_record(13) is cust-3 at seq 14: only the segment up to seq 10 may go.
    hold = await add_hold(engine, "subpoena 42", "test", now, customer_id="cust-3",
                          from_ts=OLD + timedelta(minutes=10))
    results = await prune(engine, writer.signer, 5 * 365, now)
    assert [(r.through_seq, r.deleted, r.held_at_seq) for r in results] == [(10, 10, 14)]
    assert (await verify_log(engine)).ok
    assert await release_hold(engine, hold, now)
    results = await prune(engine, writer.signer, 5 * 365, now)
    assert [(r.through_seq, r.deleted) for r in results] == [(20, 10)]
    assert (await verify_log(engine)).ok


async def test_prefix_deleted_without_tombstone_is_detected(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine,
) -> None:
    await _fill(writer_factory, settings)
    async with engine.begin() as conn:
        await conn.execute(audit_records.delete().where(audit_records.c.seq <= 20))
    report = await verify_log(engine)
    assert report.first is not None and (report.first.kind, report.first.seq) == ("gap", 21)
