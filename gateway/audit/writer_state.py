"""Small pieces of writer state kept apart from the hot path in ``writer.py``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.chain import utc
from gateway.audit.signing import Signer
from gateway.audit.tables import audit_checkpoints, audit_keys, audit_nodes
from gateway.settings import Settings


@dataclass(slots=True)
class CheckpointState:
    """Where this chain's last signed checkpoint is, to know when the next is due.

    ``at`` is the monotonic time of that checkpoint. When the state is read
    from the database (at claim, and after every failed batch) it is placed
    by the checkpoint's stored time, not at "now": otherwise each outage would
    restart the interval, and outages recurring within
    ``GATEWAY_AUDIT_CHECKPOINT_SECONDS`` would keep every record unsigned.
    """

    seq: int = 0
    at: float = field(default_factory=time.monotonic)

    def due(self, head_seq: int, settings: Settings) -> bool:
        pending = head_seq - self.seq
        if pending <= 0:
            return False
        if pending >= settings.audit_checkpoint_every:
            return True
        return time.monotonic() - self.at >= settings.audit_checkpoint_seconds

    def mark(self, seq: int) -> None:
        self.seq = seq
        self.at = time.monotonic()

    async def load(self, conn: AsyncConnection, node_id: str, now: datetime) -> None:
        """Read the chain's last checkpoint (or tombstone); ``now`` is the writer's clock."""
        last = (
            await conn.execute(
                select(audit_checkpoints.c.seq, audit_checkpoints.c.ts)
                .where(audit_checkpoints.c.node_id == node_id)
                .order_by(audit_checkpoints.c.seq.desc(), audit_checkpoints.c.id.desc())
                .limit(1)
            )
        ).first()
        since: datetime | None
        if last is not None:
            since = last.ts
        else:
            # Never checkpointed: the interval runs from the chain's creation.
            since = (
                await conn.execute(
                    select(audit_nodes.c.created_at).where(audit_nodes.c.node_id == node_id)
                )
            ).scalar()
        await conn.rollback()  # end the read transaction SQLAlchemy opened
        self.seq = int(last.seq) if last is not None else 0
        # Wall time elapsed since then, carried onto the monotonic clock that
        # ``due`` reads; a stored time ahead of this clock (skew) counts as now.
        elapsed = 0.0 if since is None else max(0.0, (utc(now) - utc(since)).total_seconds())
        self.at = time.monotonic() - elapsed


async def register_key(conn: AsyncConnection, signer: Signer, now: object) -> None:
    """Store the public key beside the checkpoints it signs (once per key)."""
    exists = (
        await conn.execute(
            select(audit_keys.c.fingerprint).where(audit_keys.c.fingerprint == signer.fingerprint)
        )
    ).first()
    await conn.rollback()
    if exists is not None:
        return
    try:
        async with conn.begin():
            await conn.execute(
                insert(audit_keys).values(
                    fingerprint=signer.fingerprint, public_key=signer.public_b64, created_at=now
                )
            )
    except IntegrityError:
        pass  # another writer registered it at the same moment: the row is what we wanted
