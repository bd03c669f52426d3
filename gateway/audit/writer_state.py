"""Small pieces of writer state kept apart from the hot path in ``writer.py``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.chain import utc
from gateway.audit.signing import Signer, payload_sha256
from gateway.audit.tables import audit_checkpoints, audit_keys, audit_nodes
from gateway.settings import Settings


@dataclass(slots=True)
class CheckpointState:
    """Where this chain's last signed checkpoint is: when the next is due, and what it
    links to (``signing.CheckpointLinks``).

    ``at`` is the monotonic time of that checkpoint. When the state is read
    from the database (at claim, and after every failed batch) it is placed
    by the checkpoint's stored time, not at "now": otherwise each outage would
    restart the interval, and outages recurring within
    ``GATEWAY_AUDIT_CHECKPOINT_SECONDS`` would keep every record unsigned.
    """

    seq: int = 0
    at: float = field(default_factory=time.monotonic)
    link: tuple[int, str] | None = None
    """``(seq, payload sha256)`` of the chain's last checkpoint; None: it has none yet."""
    others: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Other chains' committed heads, as last read (``ChainSession.read_others``)."""
    witnessed: dict[str, tuple[int, str]] = field(default_factory=dict)
    """What this writer's checkpoints already signed of ``others`` since it loaded."""

    def due(self, head_seq: int, settings: Settings) -> bool:
        pending = head_seq - self.seq
        if pending <= 0:
            return False
        if pending >= settings.audit_checkpoint_every:
            return True
        return time.monotonic() - self.at >= settings.audit_checkpoint_seconds

    def news(self) -> dict[str, tuple[int, str]]:
        """The other chains' heads the next checkpoint should sign (those that moved)."""
        return {n: h for n, h in sorted(self.others.items()) if self.witnessed.get(n) != h}

    def mark(self, seq: int, payload: str) -> None:
        self.seq = seq
        self.at = time.monotonic()
        self.link = (seq, payload_sha256(payload))
        for node, head in orjson.loads(payload).get("nodes", {}).items():
            self.witnessed[node] = (int(head["seq"]), str(head["hash"]))

    async def load(self, conn: AsyncConnection, node_id: str, now: datetime) -> None:
        """Read the chain's last checkpoint (or tombstone); ``now`` is the writer's clock."""
        cps = audit_checkpoints.c
        last = (
            await conn.execute(
                select(cps.seq, cps.ts).where(cps.node_id == node_id)
                .order_by(cps.seq.desc(), cps.id.desc()).limit(1)
            )
        ).first()
        # The newest checkpoint (tombstones are not links) is what the next one names.
        row = (await conn.execute(
            select(cps.seq, cps.payload).where(cps.node_id == node_id, cps.kind == "checkpoint")
            .order_by(cps.seq.desc(), cps.id.desc()).limit(1)
        )).first()
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
        self.link = None if row is None else (int(row.seq), payload_sha256(str(row.payload)))
        # Witness every other chain again in the first checkpoint after (re)loading.
        self.witnessed = {}


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
