"""Pruning whole checkpointed segments behind a signed tombstone; legal holds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
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


@pytest.mark.parametrize("days", [0, -1])
async def test_non_positive_retention_is_refused(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, days: int,
) -> None:
    """A cutoff at or after now would prune up to the newest checkpoint, today's records
    included (/tmp/p1/tamper/prune: ``--days -1`` removed them and exited 0)."""
    writer = await _fill(writer_factory, settings)
    with pytest.raises(ValueError, match="at least 1 day"):
        await prune(engine, writer.signer, days, datetime.now(UTC))
    assert await _count(engine) == 30


def _gateway(db: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    clean.update(GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{db}", COLUMNS="300", **env)
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], env=clean,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_prune_and_the_settings_refuse_non_positive_days(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, db_path: Path,
    tmp_path: Path,
) -> None:
    writer = await _fill(writer_factory, settings)
    await writer.stop()
    for days in ("0", "-1"):
        result = _gateway(db_path, "audit", "prune", "--days", days)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Invalid value for '--days': Input should be greater than or equal to 1" \
            in result.stderr
    result = _gateway(db_path, "audit", "prune", GATEWAY_AUDIT_RETENTION_DAYS="-5")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "GATEWAY_AUDIT_RETENTION_DAYS: Input should be greater than or equal to 1" \
        in result.stderr
    assert await _count(engine) == 30
    # Start-up refuses it too, naming the variable, before serving anything.
    served = _gateway(tmp_path / "serve.db", "serve", "--port", "1",
                      GATEWAY_AUDIT_RETENTION_DAYS="-5", GATEWAY_UPSTREAM_URL="http://127.0.0.1:9")
    assert served.returncode == 2 and "GATEWAY_AUDIT_RETENTION_DAYS" in served.stdout + \
        served.stderr
    # Fewer days than the export-control period are allowed, with a note.
    short = _gateway(db_path, "audit", "prune", "--dry-run", "--days", "30")
    assert short.returncode == 0 and "15 CFR 762.6" in " ".join(short.stderr.split())
