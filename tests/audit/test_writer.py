from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.chain import GENESIS, chain_hash
from gateway.audit.tables import audit_checkpoints, audit_decision_rules, audit_records
from gateway.audit.writer import AuditWriter
from tests.audit.conftest import make_record


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
