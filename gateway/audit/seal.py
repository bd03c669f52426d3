"""``gateway audit seal --node N``: sign the tail a dead writer left unsigned.

A writer signs its chain at least every ``audit_checkpoint_seconds`` and when it
stops; one killed (SIGKILL, power loss, a replica scaled away after a crash)
leaves its newest records unsigned, and ``gateway audit verify`` then fails
that chain once the tail is older than the signing cadence, because from the
database alone it looks exactly like checkpoints deleted by a forger. A writer
that claims the chain again (a restart with the same node id) signs the tail at
once; for a chain nobody will claim again, this does the same by hand.

What the signature then vouches for is the tail *as it stands now*: run
``gateway audit verify`` first, and seal only a chain whose only problem is its
unsigned tail. The chain must be free: no live writer holds its lease, and its
head row agrees with its last record (the same rule a writer applies before
extending a chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.chain_session import ChainSession
from gateway.audit.nodes import NodeUnavailable
from gateway.audit.signing import Signer
from gateway.audit.tables import audit_nodes
from gateway.audit.writer import LEASE_SECONDS
from gateway.audit.writer_state import register_key
from gateway.settings import Settings


@dataclass(frozen=True, slots=True)
class Sealed:
    node_id: str
    seq: int
    head_hash: str
    signed: bool
    """False: the chain's newest record was already signed; nothing was written."""


async def seal_chain(engine: AsyncEngine, settings: Settings, signer: Signer,
                     node_id: str) -> Sealed:
    """Claim ``node_id``, sign its head, release it. Raises NodeUnavailable."""
    async with engine.connect() as conn:
        exists = (await conn.execute(select(audit_nodes.c.node_id)
                                     .where(audit_nodes.c.node_id == node_id))).first()
    if exists is None:
        raise NodeUnavailable(f"there is no chain {node_id}")
    counted: list[int] = []
    session = ChainSession(engine, settings, signer, lambda: datetime.now(UTC), 5000,
                           LEASE_SECONDS, lambda: counted.append(1))
    try:
        await register_key(await session.connection(), signer, datetime.now(UTC))
        await session.claim(node_id)  # signs the tail, as every claim does
        assert session.head is not None
        head = session.head
        await session.release()
    finally:
        await session.drop_connection()
    return Sealed(node_id, head.seq, head.hash, bool(counted))
