"""Which chain a writer extends: node ids, leases and the committed head.

Every writer process (one per uvicorn worker, one per replica) needs a chain
of its own, because a chain is a strict sequence. A writer claims the row of
``audit_nodes`` for its base id (``GATEWAY_NODE_ID`` or the host name); if a
live writer holds it, it takes ``<base>-2``, ``<base>-3``... A lease is live
while its heartbeat is younger than ``lease_seconds``, except that a lease
held by a dead process on this same host is taken over at once (restart after
a crash resumes the same chain).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.chain import GENESIS, utc
from gateway.audit.tables import audit_nodes, audit_records

log = logging.getLogger(__name__)
MAX_SUFFIX = 256


class NodeUnavailable(Exception):
    """No chain could be claimed (all taken, or the store refused)."""


@dataclass(frozen=True, slots=True)
class Head:
    node_id: str
    seq: int
    hash: str


def default_base_id(configured: str | None) -> str:
    raw = configured or socket.gethostname() or "node"
    clean = re.sub(r"[^A-Za-z0-9._-]", "-", raw)[:48]
    return clean or "node"


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claimable(row: Row[tuple[object, ...]], owner: str, now: datetime, lease_s: float) -> bool:
    held_by = row.owner
    if held_by is None:
        return True
    if utc(row.heartbeat_at) < now - timedelta(seconds=lease_s):
        return True
    host, _, rest = str(held_by).partition(":")
    pid_text, _, _token = rest.partition(":")
    my_host = owner.partition(":")[0]
    if host == my_host and pid_text.isdigit():
        pid = int(pid_text)
        return pid != os.getpid() and not _pid_alive(pid)
    return False


async def live_chains(conn: AsyncConnection, now: datetime, lease_s: float) -> list[str]:
    """Chains held now by a live writer: the ones a claim would skip.

    Read only (a handful of rows: one per writer ever started). A lease left
    by a crashed process on this host is not live, as for a claim.
    """
    query = select(audit_nodes).where(audit_nodes.c.owner.is_not(None))
    rows = (await conn.execute(query)).all()
    here = f"{socket.gethostname()}:"  # _claimable reads only the host of its ``owner``
    return sorted(str(row.node_id) for row in rows if not _claimable(row, here, now, lease_s))


async def stored_tail(conn: AsyncConnection, node_id: str) -> tuple[int, str] | None:
    row = (
        await conn.execute(
            select(audit_records.c.seq, audit_records.c.hash)
            .where(audit_records.c.node_id == node_id)
            .order_by(audit_records.c.seq.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (int(row.seq), str(row.hash))


async def claim_node(
    conn: AsyncConnection, base: str, owner: str, now: datetime, lease_s: float
) -> Head:
    """Claim the first free chain ``base``, ``base-2``, ...; returns its committed head.

    A chain whose head row disagrees with its last stored record (edited or
    truncated) is skipped with an error log: ``gateway audit verify`` reports
    the damage, and this writer goes on with a sound chain instead of
    extending a broken one.
    """
    for i in range(1, MAX_SUFFIX + 1):
        node_id = base if i == 1 else f"{base}-{i}"
        head = await try_claim(conn, node_id, owner, now, lease_s)
        if head is not None:
            return head
    raise NodeUnavailable(f"no free audit chain among {base}..{base}-{MAX_SUFFIX}")


async def try_claim(
    conn: AsyncConnection, node_id: str, owner: str, now: datetime, lease_s: float
) -> Head | None:
    async with conn.begin():
        query = select(audit_nodes).where(audit_nodes.c.node_id == node_id)
        row = (await conn.execute(query)).first()
        if row is None:
            tail = await stored_tail(conn, node_id)
            if tail is not None:
                log.error("audit chain %s has records but no head row; skipping it", node_id)
                return None
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(audit_nodes).values(
                            node_id=node_id, last_seq=0, last_hash=GENESIS, owner=owner,
                            heartbeat_at=now, created_at=now,
                        )
                    )
            except IntegrityError:
                return None  # another writer created it first
            return Head(node_id, 0, GENESIS)
        if not _claimable(row, owner, now, lease_s):
            return None
        owner_match = (
            audit_nodes.c.owner.is_(None) if row.owner is None else audit_nodes.c.owner == row.owner
        )
        result = await conn.execute(
            update(audit_nodes)
            .where(audit_nodes.c.node_id == node_id, owner_match,
                   audit_nodes.c.heartbeat_at == row.heartbeat_at)
            .values(owner=owner, heartbeat_at=now)
        )
        if result.rowcount != 1:
            return None
        tail = await stored_tail(conn, node_id)
        if tail is not None and tail != (int(row.last_seq), str(row.last_hash)):
            log.error(
                "audit chain %s: head row says seq %s but last record is seq %s; "
                "not extending it (run `gateway audit verify`)", node_id, row.last_seq, tail[0],
            )
            await conn.execute(
                update(audit_nodes).where(audit_nodes.c.node_id == node_id).values(owner=None)
            )
            return None
        return Head(node_id, int(row.last_seq), str(row.last_hash))


async def release_node(conn: AsyncConnection, node_id: str, owner: str) -> None:
    async with conn.begin():
        await conn.execute(
            update(audit_nodes)
            .where(audit_nodes.c.node_id == node_id, audit_nodes.c.owner == owner)
            .values(owner=None)
        )
