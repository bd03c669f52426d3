"""Retention: prune expired records in whole checkpointed segments; legal holds.

A chain is pruned only up to a signed checkpoint whose time is older than the
retention period (every record up to it was committed before that time), and
never past the first record that an active legal hold covers. The pruned
prefix is replaced by a signed *tombstone* ``(node_id, seq, head_hash,
count)``: ``verify`` then starts that chain at ``seq + 1`` with ``prev_hash =
head_hash``, and checks that the tombstone matches the checkpoint it cites.
Checkpoints themselves are kept (a few hundred bytes per thousand records).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.audit.chain import utc
from gateway.audit.checkpoints import load_checkpoints
from gateway.audit.signing import Signer, checkpoint_payload
from gateway.audit.tables import (
    audit_checkpoints,
    audit_decision_rules,
    audit_legal_holds,
    audit_records,
)


@dataclass(slots=True)
class PruneResult:
    node_id: str
    through_seq: int
    deleted: int
    held_at_seq: int | None = None
    """The first record an active legal hold protects, when a hold stopped the prune."""


EXPORT_CONTROL_DAYS = 5 * 365
"""EAR 15 CFR 762.6: export-control records are kept five years (the default)."""


async def prune(
    engine: AsyncEngine, signer: Signer, retention_days: int, now: datetime,
    *, dry_run: bool = False,
) -> list[PruneResult]:
    if retention_days < 1:
        # 0 or less puts the cutoff at or after now: every segment up to the newest
        # checkpoint, today's records included, would go.
        raise ValueError(f"retention must be at least 1 day, not {retention_days}")
    cutoff = utc(now) - timedelta(days=retention_days)
    results: list[PruneResult] = []
    async with engine.connect() as conn:
        cps = await load_checkpoints(conn)
        holds = await active_holds(conn)
        for node_id in sorted(cps.by_node):
            valid = cps.valid_for(node_id)
            done = max((c.seq for c in valid if c.kind == "tombstone"), default=0)
            expired = [c for c in valid if c.kind == "checkpoint" and c.seq > done
                       and datetime.fromisoformat(c.ts) < cutoff]
            if not expired:
                continue
            held = await _first_held_seq(conn, node_id, done, max(c.seq for c in expired), holds)
            allowed = [c for c in expired if held is None or c.seq < held]
            if not allowed:
                results.append(PruneResult(node_id, done, 0, held))
                continue
            target = max(allowed, key=lambda c: c.seq)
            if dry_run:
                results.append(PruneResult(node_id, target.seq, target.seq - done, held))
                continue
            deleted = await _prune_node(conn, signer, node_id, done, target.seq,
                                        target.head_hash, now)
            results.append(PruneResult(node_id, target.seq, deleted, held))
    return results


async def _first_held_seq(
    conn: AsyncConnection, node_id: str, after: int, upto: int, holds: list[Any]
) -> int | None:
    t = audit_records
    first: int | None = None
    for hold in holds:
        query = select(func.min(t.c.seq)).where(t.c.node_id == node_id, t.c.seq > after,
                                                t.c.seq <= upto)
        if hold.customer_id is not None:
            query = query.where(t.c.customer_id == hold.customer_id)
        if hold.from_ts is not None:
            query = query.where(t.c.ts >= hold.from_ts)
        if hold.until_ts is not None:
            query = query.where(t.c.ts < hold.until_ts)
        seq = (await conn.execute(query)).scalar()
        if seq is not None and (first is None or seq < first):
            first = int(seq)
    await conn.rollback()
    return first


async def _prune_node(
    conn: AsyncConnection, signer: Signer, node_id: str, after: int, through: int,
    head_hash: str, now: datetime,
) -> int:
    t = audit_records
    in_range = and_(t.c.node_id == node_id, t.c.seq > after, t.c.seq <= through)
    async with conn.begin():
        await conn.execute(delete(audit_decision_rules).where(
            audit_decision_rules.c.decision_id.in_(select(t.c.id).where(in_range))))
        deleted = (await conn.execute(delete(t).where(in_range))).rowcount
        payload = checkpoint_payload("tombstone", node_id, through, head_hash, deleted, now)
        await conn.execute(insert(audit_checkpoints).values(
            kind="tombstone", node_id=node_id, seq=through, head_hash=head_hash, count=deleted,
            ts=utc(now), key_fingerprint=signer.fingerprint, payload=payload.decode("ascii"),
            signature=signer.sign(payload)))
    return int(deleted)


async def active_holds(conn: AsyncConnection) -> list[Any]:
    rows = (await conn.execute(select(audit_legal_holds).where(
        audit_legal_holds.c.released_at.is_(None)).order_by(audit_legal_holds.c.id))).all()
    await conn.rollback()
    return list(rows)


async def get_hold(conn: AsyncConnection, hold_id: int) -> Any:
    row = (await conn.execute(select(audit_legal_holds).where(
        audit_legal_holds.c.id == hold_id))).one()
    await conn.rollback()
    return row


async def add_hold(
    engine: AsyncEngine, reason: str, created_by: str, now: datetime,
    customer_id: str | None = None, from_ts: datetime | None = None,
    until_ts: datetime | None = None,
) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(insert(audit_legal_holds).values(
            customer_id=customer_id, from_ts=from_ts and utc(from_ts),
            until_ts=until_ts and utc(until_ts), reason=reason, created_by=created_by,
            created_at=utc(now)))
        key = result.inserted_primary_key
        return int(key[0]) if key is not None else 0


async def release_hold(engine: AsyncEngine, hold_id: int, now: datetime) -> bool:
    async with engine.begin() as conn:
        result = await conn.execute(update(audit_legal_holds).where(
            audit_legal_holds.c.id == hold_id, audit_legal_holds.c.released_at.is_(None))
            .values(released_at=utc(now)))
    return bool(result.rowcount)
