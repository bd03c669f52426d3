from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.chain import GENESIS, chain_hash
from gateway.audit.ids import new_id
from gateway.audit.record import OutcomeRecord
from gateway.audit.sqlite_fast import WAL_BACKSTOP_PAGES
from gateway.audit.tables import audit_checkpoints, audit_decision_rules, audit_records
from gateway.audit.verify import verify_log
from gateway.audit.writer import AuditWriter
from gateway.settings import Settings
from tests.audit.conftest import make_record, make_settings


async def _rows(engine: AsyncEngine) -> list:
    async with engine.connect() as conn:
        return list((await conn.execute(
            select(audit_records).order_by(audit_records.c.node_id, audit_records.c.seq)
        )).all())


async def test_record_commits_and_chains(writer: AuditWriter, engine: AsyncEngine) -> None:
    for i in range(5):
        await writer.record(make_record(i))
    rows = await _rows(engine)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    prev = GENESIS
    for r in rows:
        assert r.prev_hash == prev
        assert r.hash == chain_hash(prev, r.body.encode())
        prev = r.hash
    assert writer.head is not None and writer.head.hash == prev


async def test_record_many_is_one_group_commit(writer: AuditWriter, engine: AsyncEngine) -> None:
    """A Message Batch of N: its N records are queued together and committed
    in one transaction (up to ``audit_batch_max``) before the call returns."""
    before = writer.stats.batches
    await writer.record_many([make_record(i) for i in range(50)])
    assert writer.stats.batches - before == 1
    assert [r.seq for r in await _rows(engine)] == list(range(1, 51))


async def test_record_many_past_the_batch_size_is_still_one_transaction(
    writer_factory: Callable[..., Any], db_path: Path, engine: AsyncEngine
) -> None:
    """Past ``audit_batch_max`` too: a group commit never cuts a batch's records."""
    writer: AuditWriter = await writer_factory(make_settings(db_path, audit_batch_max=8))
    await writer.record_many([make_record(i) for i in range(20)])
    assert writer.stats.batches == 1
    assert [r.seq for r in await _rows(engine)] == list(range(1, 21))


async def test_a_record_json_cannot_carry_refuses_its_whole_group(
    writer: AuditWriter, engine: AsyncEngine
) -> None:
    """A Message Batch's records are all written or none: one its producer got
    wrong (a value JSON cannot carry) refuses the others too; a record queued
    alone beside them is not hurt."""
    batch = [make_record(i) for i in range(5)]
    batch[3] = make_record(3, facts={"bad": object()})
    alone = make_record(9)
    results = await asyncio.gather(writer.record_many(batch), writer.record(alone),
                                   return_exceptions=True)  # fmt: skip
    assert isinstance(results[0], TypeError) and results[1] is None, results
    assert [r.id for r in await _rows(engine)] == [alone.id]


async def test_group_commit_200_concurrent(writer: AuditWriter, engine: AsyncEngine) -> None:
    before = writer.stats.batches
    await asyncio.gather(*(writer.record(make_record(i)) for i in range(200)))
    batches = writer.stats.batches - before
    print(f"200 concurrent records committed in {batches} transactions")
    assert batches <= 10
    rows = await _rows(engine)
    assert [r.seq for r in rows] == list(range(1, 201))
    prev = GENESIS
    for r in rows:
        assert r.prev_hash == prev and r.hash == chain_hash(prev, r.body.encode())
        prev = r.hash
    async with engine.connect() as conn:
        count_rules = select(func.count()).select_from(audit_decision_rules)
        n_rules = (await conn.execute(count_rules)).scalar()
        n_cp = (await conn.execute(select(func.count()).select_from(audit_checkpoints))).scalar()
    assert n_rules == 200
    assert n_cp is not None and n_cp >= 1


async def test_single_connection_latency(
    writer_factory: Callable[..., Any], db_path: Path
) -> None:
    """Added latency of record() at one connection, COMMIT included (printed).

    synchronous=NORMAL: WAL commit without fsync (survives a process crash, not
    power loss); FULL adds one fsync of the WAL per batch, whatever the disk costs.
    """
    for sync in ("NORMAL", "FULL"):
        settings = make_settings(db_path, sqlite_synchronous=sync, node_id=f"lat-{sync}")
        w: AuditWriter = await writer_factory(settings)
        lat = []
        for i in range(300):
            rec = make_record(i)
            t0 = time.perf_counter()
            await w.record(rec)
            lat.append(time.perf_counter() - t0)
        lat.sort()
        p50, p99 = lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000
        print(f"\nsynchronous={sync}: record() p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        # Loose bound on a shared 2-core machine; the target (0.8 ms p50) is printed above.
        assert p50 < (5 if sync == "NORMAL" else 50)


def _outcome(decision_id: str) -> OutcomeRecord:
    return OutcomeRecord(new_id(), datetime.now(UTC), decision_id, 200, tokens_in=1, tokens_out=2)


async def test_outcomes_ride_with_the_next_decision(
    writer: AuditWriter, engine: AsyncEngine
) -> None:
    """One commit per request at one connection: the outcome waits for the next decision."""
    first = make_record(1)
    await writer.record(first)
    before = writer.stats.batches
    await writer.record_outcome(_outcome(first.id))
    await writer.record(make_record(2))
    assert writer.stats.batches - before == 1
    kinds = [r.kind for r in await _rows(engine)]
    assert kinds == ["decision", "outcome", "decision"]


async def test_lone_outcome_is_flushed_soon(writer: AuditWriter, engine: AsyncEngine) -> None:
    first = make_record(1)
    await writer.record(first)
    await writer.record_outcome(_outcome(first.id))
    deadline = time.monotonic() + 2
    while len(await _rows(engine)) < 2:
        assert time.monotonic() < deadline, "an un-awaited outcome was never flushed"
        await asyncio.sleep(0.01)
    assert writer.stats.batches == 2


async def test_stop_flushes_queued_outcomes(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine
) -> None:
    w: AuditWriter = await writer_factory(settings)
    first = make_record(1)
    await w.record(first)
    for _ in range(3):
        await w.record_outcome(_outcome(first.id))
    await w.stop()
    assert [r.kind for r in await _rows(engine)] == ["decision"] + ["outcome"] * 3
    assert (await verify_log(engine)).ok


async def test_unserialisable_record_fails_alone(
    writer: AuditWriter, engine: AsyncEngine
) -> None:
    good = [make_record(i) for i in range(5)]
    bad = make_record(9, facts={"oops": object()})
    results = await asyncio.gather(*(writer.record(r) for r in [*good[:2], bad, *good[2:]]),
                                   return_exceptions=True)
    assert isinstance(results[2], TypeError)
    assert all(r is None for i, r in enumerate(results) if i != 2)
    assert [r.id for r in await _rows(engine)] == [r.id for r in good]
    assert (await verify_log(engine)).ok


async def test_wal_is_checkpointed_off_the_hot_path(
    writer_factory: Callable[..., Any], db_path: Path
) -> None:
    settings = make_settings(db_path, node_id="wal")
    w: AuditWriter = await writer_factory(settings)
    assert w._wal is not None
    w._wal._interval = 0.05
    w._wal.stop()
    w._wal.start()
    for i in range(50):
        await w.record(make_record(i))
    deadline = time.monotonic() + 5
    while w._wal.runs < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    # The writer's own connection only checkpoints as a backstop (not inside its commits).
    assert w._fast is not None and w._fast._conn is not None
    pages = w._fast._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert pages == WAL_BACKSTOP_PAGES


async def test_linger_waits_for_announced_requests(
    writer_factory: Callable[..., Any], db_path: Path
) -> None:
    """A request announced with expect_decision() shares the commit of one already queued."""
    w: AuditWriter = await writer_factory(make_settings(db_path, audit_batch_wait_ms=300))
    await w.record(make_record(0))  # warm: chain claimed, connection open
    before = w.stats.batches
    w.expect_decision()
    w.expect_decision()

    async def late() -> None:
        await asyncio.sleep(0.03)  # still in an earlier stage of its request
        await w.record(make_record(2))

    t0 = time.perf_counter()
    late_task = asyncio.create_task(late())
    await w.record(make_record(1))
    waited = time.perf_counter() - t0
    await late_task
    assert w.stats.batches - before == 1, "the announced record did not share the commit"
    assert 0.02 < waited < 0.25


async def test_linger_ends_when_an_announced_request_withdraws(
    writer_factory: Callable[..., Any], db_path: Path
) -> None:
    w: AuditWriter = await writer_factory(make_settings(db_path, audit_batch_wait_ms=300))
    await w.record(make_record(0))
    w.expect_decision()
    w.expect_decision()

    async def gone() -> None:
        await asyncio.sleep(0.03)
        w.cancel_expected()  # e.g. its client left before the body was complete

    t0 = time.perf_counter()
    task = asyncio.create_task(gone())
    await w.record(make_record(1))
    assert time.perf_counter() - t0 < 0.2, "lingered past the withdrawal"
    await task
    # A leaked expectation (announced, never recorded) costs at most the linger time.
    w.expect_decision()
    w.expect_decision()
    t0 = time.perf_counter()
    await w.record(make_record(2))
    assert 0.25 < time.perf_counter() - t0 < 1.0


async def test_linger_counts_only_waiting_callers(
    writer_factory: Callable[..., Any], db_path: Path
) -> None:
    """decision + previous outcome in one batch is not concurrency: no linger."""
    w: AuditWriter = await writer_factory(make_settings(db_path, audit_batch_wait_ms=300))
    previous = make_record(0)
    await w.record(previous)
    for i in range(1, 6):
        await w.record_outcome(_outcome(previous.id))
        previous = make_record(i)
        t0 = time.perf_counter()
        await w.record(previous)
        assert time.perf_counter() - t0 < 0.15, "lingered after a batch with one waiter"
    # Concurrent waiters still share one batch.
    await asyncio.gather(*(w.record(make_record(i)) for i in range(8)))
    before = w.stats.batches
    await asyncio.gather(*(w.record(make_record(i)) for i in range(8)))
    assert w.stats.batches - before == 1


async def test_an_event_kind_wider_than_its_column_is_refused_at_once(writer: AuditWriter) -> None:
    """``audit_records.kind`` is 16 characters: PostgreSQL refused a longer one at
    commit, so an unawaited event record was lost with only a log line (SQLite
    stores it anyway, which is how a 21-character kind got past the SQLite tests)."""
    with pytest.raises(ValueError, match="longer than 16"):
        await writer.record_event("policy_reload_refused", {}, wait=False)
    assert await writer.record_event("policy_refused", {"errors": []})
