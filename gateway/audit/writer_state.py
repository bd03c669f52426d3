"""Small pieces of writer state kept apart from the hot path in ``writer.py``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.signing import Signer
from gateway.audit.tables import audit_checkpoints, audit_keys
from gateway.settings import Settings


@dataclass(slots=True)
class CheckpointState:
    """Where this chain's last signed checkpoint is, to know when the next is due."""

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

    async def load(self, conn: AsyncConnection, node_id: str) -> None:
        last = (
            await conn.execute(
                select(func.max(audit_checkpoints.c.seq)).where(
                    audit_checkpoints.c.node_id == node_id
                )
            )
        ).scalar()
        await conn.rollback()  # end the read transaction SQLAlchemy opened
        self.seq = int(last or 0)
        self.at = time.monotonic()


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
