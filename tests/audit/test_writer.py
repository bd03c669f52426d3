from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.chain import GENESIS, chain_hash
from gateway.audit.tables import audit_checkpoints, audit_decision_rules, audit_records
from gateway.audit.writer import AuditWriter
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
