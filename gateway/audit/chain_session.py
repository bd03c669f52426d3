"""The writer's hold on its chain: connection, committed head, lease, checkpoints.

Everything here is off the hot path (claim at start, re-read after a failure,
heartbeat and time-based checkpoint while idle, final checkpoint at stop),
through SQLAlchemy Core so it runs on SQLite and PostgreSQL alike. The head
moves only through ``advanced`` after a COMMIT; after any failure it is
marked stale and re-read from the database before the next batch, so a batch
whose fate is unknown can never fork the chain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.audit import nodes
from gateway.audit.batch import ChainConflict
from gateway.audit.signing import CheckpointLinks, Signer, checkpoint_payload
from gateway.audit.tables import audit_checkpoints, audit_nodes, audit_records
from gateway.audit.writer_state import CheckpointState
from gateway.settings import Settings

log = logging.getLogger("gateway.audit.writer")


class ChainSession:
    def __init__(self, engine: AsyncEngine, settings: Settings, signer: Signer,
                 clock: Callable[[], datetime], busy_timeout_ms: int, lease_s: float,
                 on_checkpoint: Callable[[], None]) -> None:
        self._engine = engine
        self._settings = settings
        self._signer = signer
        self._clock = clock
        self._busy_timeout_ms = busy_timeout_ms
        self.lease_s = lease_s
        self._on_checkpoint = on_checkpoint
        self._base_id = nodes.default_base_id(settings.node_id)
        self.owner = nodes.new_owner()
        self._conn: AsyncConnection | None = None
        self._driver: object = None
        """The driver's own connection under ``_conn`` (``terminate``)."""
        self.head: nodes.Head | None = None
        self.stale = False
        self.cp = CheckpointState()
        self.last_heartbeat = 0.0

    # --- connection -----------------------------------------------------------

    async def connection(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._engine.connect()
            if self._engine.dialect.name == "sqlite":
                # Fail (503) after this long behind another writer's lock,
                # rather than holding requests for the engine-wide 30 s.
                await conn.exec_driver_sql(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
                await conn.commit()
            elif self._engine.dialect.name == "postgresql":
                # A server (or database, or role) set to synchronous_commit=off
                # answers COMMIT before the WAL is written: a crash then loses
                # decisions already acknowledged and forwarded, and the chain
                # head rolls back with them, so verify cannot tell. The audit
                # connection raises only 'off' (to the default, 'on'), leaving
                # local, remote_write and remote_apply as the DBA chose them.
                await conn.exec_driver_sql(
                    "SELECT set_config('synchronous_commit', 'on', false) "
                    "WHERE current_setting('synchronous_commit') = 'off'")
                await conn.commit()  # a session setting made in a rolled-back transaction reverts
                self._driver = (await conn.get_raw_connection()).driver_connection
            self._conn = conn
        return self._conn

    def terminate(self) -> None:
        """Close the connection's socket now, whatever runs on it (its statements
        fail at once); ``failed`` then drops it. The writer's deadline on an
        attempt against a server that stopped answering."""
        close = getattr(self._driver, "terminate", None)  # asyncpg's; SQLite has none
        if self._conn is not None and close is not None:
            log.error("audit commit still unanswered after %.1f s: closing its connection",
                      self._settings.database_timeout_seconds)  # fmt: skip
            close()

    async def drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._driver = None
        if conn is None:
            return
        try:
            await conn.invalidate()
            await conn.close()
        except Exception as exc:  # noqa: BLE001 - a broken connection may fail to close
            log.warning("closing the audit connection failed: %s", exc)

    # --- the head ---------------------------------------------------------------

    async def claim(self, node_id: str | None = None) -> None:
        """Claim a free chain of this writer's base id, or exactly ``node_id`` (``seal``)."""
        conn = await self.connection()
        if node_id is None:
            self.head = await nodes.claim_node(
                conn, self._base_id, self.owner, self._clock(), self.lease_s
            )
        else:
            self.head = await nodes.try_claim(conn, node_id, self.owner, self._clock(),
                                              self.lease_s)
            if self.head is None:
                raise nodes.NodeUnavailable(
                    f"chain {node_id} is held by a live writer, or its head row disagrees with "
                    "its records (see `gateway audit verify`)")
        self.stale = False
        await self.cp.load(conn, self.head.node_id, self._clock())
        self.last_heartbeat = time.monotonic()
        # The fingerprint says which public key verifies what this writer signs.
        log.info("audit writer owns chain %s at seq %d, signing with key %s",
                 self.head.node_id, self.head.seq, self._signer.fingerprint)  # fmt: skip
        # A new chain is signed from its first moment (a genesis checkpoint at seq 0),
        # and a chain taken over after a crash has its unsigned tail signed now: so a
        # chain without checkpoints, or with an old unsigned tail, is a forgery's mark.
        if self.cp.link is None or self.head.seq > self.cp.seq:
            await self.write_checkpoint(force=True)

    async def current(self) -> nodes.Head:
        """The committed head to chain the next batch onto (re-read after a failure)."""
        if self.head is None:
            await self.claim()
        elif self.stale:
            await self._reload()
        assert self.head is not None
        return self.head

    async def _reload(self) -> None:
        assert self.head is not None
        conn = await self.connection()
        async with conn.begin():
            row = (await conn.execute(
                audit_nodes.select().where(audit_nodes.c.node_id == self.head.node_id)
            )).first()
        if row is None or row.owner != self.owner:
            self.head = None
            await self.claim()
            return
        self.head = nodes.Head(self.head.node_id, int(row.last_seq), str(row.last_hash))
        await self.cp.load(conn, self.head.node_id, self._clock())
        self.stale = False

    async def stored_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are already in the log (a failed batch may have landed)."""
        conn = await self.connection()
        async with conn.begin():
            rows = await conn.execute(select(audit_records.c.id).where(audit_records.c.id.in_(ids)))
            return {str(r[0]) for r in rows}

    def advanced(self, head: nodes.Head) -> None:
        """A batch COMMITted (its head update doubles as the lease heartbeat)."""
        self.head = head
        self.last_heartbeat = time.monotonic()

    async def failed(self, exc: BaseException) -> None:
        """After any failure: re-read (or, after a conflict, re-claim) before the next batch."""
        self.head = None if isinstance(exc, ChainConflict) else self.head
        self.stale = True
        await self.drop_connection()

    # --- checkpoints and the lease -----------------------------------------------

    def checkpoint_due(self, seq: int) -> bool:
        return self.cp.due(seq, self._settings)

    @property
    def within_s(self) -> float:
        """Signed in each checkpoint: new records are signed within this long. A
        record committed more than ``audit_checkpoint_seconds`` after the last
        checkpoint brings one in its own batch; earlier ones are signed by the
        first batch or idle tick (``writer._run``) after that."""
        seconds = self._settings.audit_checkpoint_seconds
        return seconds + min(seconds, self.lease_s / 3)

    async def read_others(self) -> None:
        """The other chains' committed heads, for the next checkpoint to sign.

        Once per checkpoint (every ``audit_checkpoint_every`` records or
        ``audit_checkpoint_seconds``), on the chain's own connection.
        """
        assert self.head is not None
        conn = await self.connection()
        rows = (await conn.execute(
            select(audit_nodes.c.node_id, audit_nodes.c.last_seq, audit_nodes.c.last_hash)
            .where(audit_nodes.c.node_id != self.head.node_id, audit_nodes.c.last_seq > 0)
        )).all()
        await conn.rollback()
        self.cp.others = {str(r.node_id): (int(r.last_seq), str(r.last_hash)) for r in rows}

    def checkpoint_seeing(self, seq: int, head_hash: str, now: datetime,
                          others: dict[str, tuple[int, str]]) -> dict[str, Any]:
        """``checkpoint_row`` with ``others`` as the other chains' heads, read by
        the caller (the SQLite fast store, inside the batch's own transaction)."""
        self.cp.others = others
        return self.checkpoint_row(seq, head_hash, now)

    def checkpoint_row(self, seq: int, head_hash: str, now: datetime) -> dict[str, Any]:
        assert self.head is not None
        count = seq - self.cp.seq
        links = CheckpointLinks(self.cp.link, self.within_s, self.cp.news())
        payload = checkpoint_payload("checkpoint", self.head.node_id, seq, head_hash, count, now,
                                     links)
        return {
            "kind": "checkpoint", "node_id": self.head.node_id, "seq": seq,
            "head_hash": head_hash, "count": count, "ts": now,
            "key_fingerprint": self._signer.fingerprint,
            "payload": payload.decode("ascii"), "signature": self._signer.sign(payload),
        }

    def checkpointed(self, row: dict[str, Any]) -> None:
        """``row`` (from ``checkpoint_row``) COMMITted: the next checkpoint links to it."""
        self.cp.mark(int(row["seq"]), str(row["payload"]))
        self._on_checkpoint()
        # The log line is an outside witness of the head: it survives a database rollback.
        log.info("audit checkpoint node=%s seq=%d head=%s",
                 self.head.node_id if self.head else "?", row["seq"], row["head_hash"])

    async def idle_maintenance(self) -> None:
        """Time-based checkpoint and lease heartbeat while no batch runs."""
        if self.head is None or self.stale:
            return
        try:
            if self.checkpoint_due(self.head.seq):
                await self.write_checkpoint(force=False)
            elif time.monotonic() - self.last_heartbeat > self.lease_s / 3:
                conn = await self.connection()
                async with conn.begin():
                    result = await conn.execute(
                        update(audit_nodes)
                        .where(audit_nodes.c.node_id == self.head.node_id,
                               audit_nodes.c.owner == self.owner)
                        .values(heartbeat_at=self._clock())
                    )
                if result.rowcount != 1:
                    raise ChainConflict("lease lost")
                self.last_heartbeat = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the next batch retries; say so loudly
            log.error("audit writer idle maintenance failed: %s: %s", type(exc).__name__, exc)
            await self.failed(exc)

    async def write_checkpoint(self, force: bool) -> None:
        head = self.head
        signed = head is not None and head.seq <= self.cp.seq and self.cp.link is not None
        if head is None or signed or (not force and not self.checkpoint_due(head.seq)):
            return
        await self.read_others()
        conn = await self.connection()
        now = self._clock()
        row = self.checkpoint_row(head.seq, head.hash, now)
        async with conn.begin():
            result = await conn.execute(
                update(audit_nodes)
                .where(audit_nodes.c.node_id == head.node_id, audit_nodes.c.owner == self.owner,
                       audit_nodes.c.last_seq == head.seq)
                .values(heartbeat_at=now)
            )
            if result.rowcount != 1:
                raise ChainConflict(f"chain {head.node_id} moved or was taken over")
            await conn.execute(insert(audit_checkpoints), [row])
        self.last_heartbeat = time.monotonic()
        self.checkpointed(row)

    async def release(self) -> None:
        if self.head is not None:
            await nodes.release_node(await self.connection(), self.head.node_id, self.owner)
