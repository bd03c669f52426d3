"""The store goes away: record() says AuditUnavailable, then the writer recovers
and the chain stays consistent (a failed batch never advances the head)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.ids import new_id
from gateway.audit.record import OutcomeRecord
from gateway.audit.tables import audit_checkpoints, audit_records
from gateway.audit.verify import verify_log
from gateway.audit.writer import AuditWriter
from gateway.settings import Settings
from gateway.stages import AuditUnavailable
from tests.audit.conftest import make_record, make_settings


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(audit_records)
        return int((await conn.execute(query)).scalar_one())


async def test_directory_moved_away_then_back(
    writer: AuditWriter, engine: AsyncEngine, db_path: Path
) -> None:
    await writer.record(make_record(1))
    head = writer.head
    moved = db_path.parent.with_name("moved")
    db_path.parent.rename(moved)
    try:
        with pytest.raises(AuditUnavailable):
            await writer.record(make_record(2))
        with pytest.raises(AuditUnavailable):
            await writer.record(make_record(3))
        assert writer.head == head or writer.head is None
    finally:
        moved.rename(db_path.parent)
    acked = make_record(4)
    await writer.record(acked)
    # The first refused batch did land in the moved file (WAL commits through the open
    # descriptor) but was not acknowledged; the head was re-read, so the chain is whole.
    report = await verify_log(engine)
    assert report.ok, report.problems
    assert writer.head is not None and writer.head.seq == await _count(engine)
    async with engine.connect() as conn:
        ids = set((await conn.execute(select(audit_records.c.id))).scalars())
    assert acked.id in ids


async def test_database_locked_by_another_process(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, db_path: Path
) -> None:
    writer: AuditWriter = await writer_factory(settings, busy_timeout_ms=200)
    await writer.record(make_record(1))
    blocker = sqlite3.connect(db_path, timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        await writer.record_outcome(OutcomeRecord(new_id(), datetime.now(UTC), "D" * 26, 200))
        with pytest.raises(AuditUnavailable):
            await writer.record(make_record(2))
    finally:
        blocker.rollback()
        blocker.close()
    await writer.record(make_record(3))
    await writer.stop()
    # The outcome that failed with the batch was retried (in a batch of its own), not dropped.
    async with engine.connect() as conn:
        kinds = [r.kind for r in (await conn.execute(
            select(audit_records.c.kind).order_by(audit_records.c.seq))).all()]
    assert sorted(kinds) == ["decision", "decision", "outcome"]
    assert (await verify_log(engine)).ok


async def test_retried_outcome_whose_batch_landed_is_not_written_twice(
    writer: AuditWriter, engine: AsyncEngine, db_path: Path
) -> None:
    """The COMMIT lands in a moved file (StoreMoved after COMMIT); when the file is back
    the outcome is already there: retrying it must not fail every later batch."""
    first = make_record(1)
    await writer.record(first)
    outcome = OutcomeRecord(new_id(), datetime.now(UTC), first.id, 200)
    await writer.record_outcome(outcome)
    moved = db_path.parent.with_name("moved")
    db_path.parent.rename(moved)
    try:
        with pytest.raises(AuditUnavailable):
            await writer.record(make_record(2))  # takes the outcome along; lands, refused
    finally:
        moved.rename(db_path.parent)
    for i in range(3, 6):
        await writer.record(make_record(i))
    await asyncio.sleep(0.2)  # past the retry backoff
    await writer.stop()
    assert writer.stats.failures == 1, "the retry of an already stored record failed"
    async with engine.connect() as conn:
        ids = [r.id for r in (await conn.execute(select(audit_records.c.id))).all()]
    assert ids.count(outcome.id) == 1
    assert (await verify_log(engine)).ok


async def test_writer_survives_uncertain_head(
    writer: AuditWriter, engine: AsyncEngine, db_path: Path
) -> None:
    """Concurrent callers during an outage all fail; afterwards all succeed, chained."""
    await writer.record(make_record(0))
    moved = db_path.parent.with_name("moved")
    db_path.parent.rename(moved)
    results = await asyncio.gather(*(writer.record(make_record(i)) for i in range(20)),
                                   return_exceptions=True)
    assert all(isinstance(r, AuditUnavailable) for r in results)
    moved.rename(db_path.parent)
    await asyncio.gather(*(writer.record(make_record(i)) for i in range(20)))
    assert await _count(engine) >= 21
    assert (await verify_log(engine)).ok


async def test_record_after_stop_is_refused(writer: AuditWriter) -> None:
    await writer.stop()
    with pytest.raises(AuditUnavailable):
        await writer.record(make_record(0))


async def test_ping(writer: AuditWriter) -> None:
    await writer.ping()


async def test_deleted_database_file_is_never_acknowledged(
    writer: AuditWriter, db_path: Path
) -> None:
    await writer.record(make_record(1))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(AuditUnavailable):
        await writer.record(make_record(2))


async def test_recovers_when_a_new_database_file_appears(
    writer: AuditWriter, engine: AsyncEngine, db_path: Path
) -> None:
    """The file is replaced (restore from backup): the writer must follow the path,
    not keep writing into the old, unlinked inode."""
    import shutil

    await writer.record(make_record(1))
    backup = db_path.with_name("backup.db")
    src = sqlite3.connect(db_path)
    dst = sqlite3.connect(backup)
    src.backup(dst)
    src.close()
    dst.close()
    await writer.record(make_record(2))  # not in the backup
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, db_path)
    with pytest.raises(AuditUnavailable):
        await writer.record(make_record(3))
    # The restored file's head row says seq 1 while this writer had seq 2: the head
    # is re-read from the file, and the chain continues from what the file holds.
    await writer.record(make_record(4))
    assert writer.head is not None and writer.head.seq == 2
    assert (await verify_log(engine)).ok


class _Clock:
    """The writer's wall clock, moved by hand (checkpoint rows carry its time)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def _checkpoint_seqs(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(audit_checkpoints.c.seq).order_by(audit_checkpoints.c.seq))
        return [int(seq) for seq in rows.scalars()]


async def test_checkpoint_cadence_survives_outages(
    writer_factory: Callable[..., Any], engine: AsyncEngine, db_path: Path
) -> None:
    """Outages shorter than the checkpoint interval, one after another, must not
    postpone the time-based checkpoint for ever: after each one the writer
    re-reads its chain, and the time since the last signed checkpoint must come
    through that (here it is read from the checkpoint's stored time)."""
    settings = make_settings(db_path, audit_checkpoint_every=1000, audit_checkpoint_seconds=60.0)
    clock = _Clock()
    first = await writer_factory(settings, clock=clock)
    await first.record(make_record(1))
    await first.stop()  # the final checkpoint, signed at clock.now
    assert await _checkpoint_seqs(engine) == [0, 1]  # 0: the chain's genesis checkpoint

    writer: AuditWriter = await writer_factory(settings, clock=clock)
    moved = db_path.parent.with_name("moved")
    for i in range(2, 6):  # an outage every 20 s: the log is never down for a minute
        clock.now += timedelta(seconds=20)
        db_path.parent.rename(moved)
        try:
            with pytest.raises(AuditUnavailable):
                await writer.record(make_record(i))
        finally:
            moved.rename(db_path.parent)
        await writer.record(make_record(i))
    # 80 s after the last checkpoint, with the cadence at 60 s: one was signed.
    assert writer.stats.checkpoints >= 1, "no checkpoint in 80 s of records"
    assert len(await _checkpoint_seqs(engine)) >= 2
    assert (await verify_log(engine)).ok


async def test_checkpoint_cadence_survives_a_restart(
    writer_factory: Callable[..., Any], engine: AsyncEngine, db_path: Path
) -> None:
    """A writer that starts on a chain whose last checkpoint is older than the
    interval signs one with its first batch (a process restarted in a loop, by
    SIGKILL, never reaches its final checkpoint)."""
    settings = make_settings(db_path, audit_checkpoint_every=1000, audit_checkpoint_seconds=60.0)
    clock = _Clock()
    first = await writer_factory(settings, clock=clock)
    await first.record(make_record(1))
    await first.stop()
    clock.now += timedelta(seconds=90)
    writer: AuditWriter = await writer_factory(settings, clock=clock)
    await writer.record(make_record(2))
    assert writer.stats.checkpoints == 1
    assert await _checkpoint_seqs(engine) == [0, 1, 2]  # 0: the chain's genesis checkpoint


async def test_a_record_the_store_refuses_fails_alone(
    writer: AuditWriter, engine: AsyncEngine
) -> None:
    """A record the store refuses (here a duplicate id: a UNIQUE violation, as a data
    error would be on PostgreSQL) rides in one group commit with twelve others: it
    fails alone, they commit, the chain stays whole. An outage still fails every
    record of its batch (test_writer_survives_uncertain_head)."""
    first = make_record(0)
    await writer.record(first)
    batch = [make_record(i) for i in range(1, 13)]
    twin = make_record(99, id=first.id)
    results = await asyncio.gather(*(writer.record(r) for r in [*batch[:6], twin, *batch[6:]]),
                                   return_exceptions=True)
    assert [r is None for r in results] == [True] * 6 + [False] + [True] * 6
    assert isinstance(results[6], AuditUnavailable)
    assert await _count(engine) == 13
    assert writer.stats.failures == 1
    # NUL and over-long values are stored (bounded query columns), and verify agrees.
    await writer.record(make_record(1, model="x\u0000" + "m" * 200, customer_id="c" * 128))
    assert (await verify_log(engine)).ok


async def test_an_outage_is_logged_once_then_summarised_not_per_batch(
    writer: AuditWriter, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every failed batch logged an error line: a database restart under
    load wrote hundreds of lines a second (800 for a 3-second PostgreSQL
    restart at 500 requests a second). The first failure is logged at once, the
    rest of the outage is summarised (count and last error), and the recovery
    says how many batches failed. Every failure still answers 503 and counts
    in ``stats.failures`` (the batch-failure metric)."""
    import logging

    await writer.record(make_record(1))
    moved = db_path.parent.with_name("moved")
    failures_before = writer.stats.failures
    with caplog.at_level(logging.INFO, logger="gateway.audit.writer"):
        db_path.parent.rename(moved)
        try:
            for i in range(30):
                with pytest.raises(AuditUnavailable):
                    await writer.record(make_record(100 + i))
        finally:
            moved.rename(db_path.parent)
        await writer.record(make_record(2))
    failed = writer.stats.failures - failures_before
    assert failed >= 30
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) <= 3, lines
    assert "failed to commit" in lines[0]
    assert f"after {failed} failed batches" in lines[-1], lines


async def test_a_long_outage_does_not_kill_the_writer(
    writer: AuditWriter, engine: AsyncEngine, db_path: Path
) -> None:
    """Seen in the chaos drill (PostgreSQL stopped for 4 s under 16 clients):
    the retry backoff was ``0.05 * 2 ** (failures - 1)``, and past 1024 failed
    batches in a row the float overflowed inside ``_failed``. The writer task
    died with that batch's callers never answered (their requests hung until
    the client gave up), and from then on every request was a 503 ("audit
    writer is not running") although the database was back: no recovery
    without a restart. An outage of any length must keep answering 503 and
    end by itself."""
    await writer.record(make_record(0))
    moved = db_path.parent.with_name("moved")
    db_path.parent.rename(moved)
    try:
        for i in range(1100):
            with pytest.raises(AuditUnavailable):
                # A hang here is the bug: the caller's future was never set.
                await asyncio.wait_for(writer.record(make_record(i)), timeout=10)
    finally:
        moved.rename(db_path.parent)
    assert writer.stats.failures >= 1100
    acked = make_record(1)
    await asyncio.wait_for(writer.record(acked), timeout=10)
    assert (await verify_log(engine)).ok


async def test_a_message_batchs_records_commit_all_or_nothing(
    writer_factory: Callable[..., Any], db_path: Path, engine: AsyncEngine
) -> None:
    """``record_many`` (a Message Batch create and its inner requests) is
    bigger than one group commit (``audit_batch_max``). When the store refuses
    one of its records (a duplicate id: a UNIQUE violation), none of them may
    stay in the log: the batch is not forwarded, and an "allow" record with
    no outcome would say its requests were. Records of others are not hurt."""
    writer: AuditWriter = await writer_factory(make_settings(db_path, audit_batch_max=8))
    first = make_record(0)
    await writer.record(first)
    batch = [make_record(i) for i in range(1, 21)]
    batch[15] = make_record(15, id=first.id)  # refused, in the batch's third commit
    others = [make_record(i) for i in range(30, 33)]
    results = await asyncio.gather(writer.record_many(batch), *(writer.record(r) for r in others),
                                   return_exceptions=True)  # fmt: skip
    assert isinstance(results[0], AuditUnavailable), results
    assert results[1:] == [None, None, None], results
    async with engine.connect() as conn:
        stored = set((await conn.execute(select(audit_records.c.id))).scalars())
    assert [r.id for r in batch if r.id in stored and r.id != first.id] == []
    assert {r.id for r in others} <= stored
    assert (await verify_log(engine)).ok
    # The whole batch again, without the bad record: all of it, in one go.
    batch[15] = make_record(15)
    await writer.record_many(batch)
    async with engine.connect() as conn:
        stored = set((await conn.execute(select(audit_records.c.id))).scalars())
    assert {r.id for r in batch} <= stored
