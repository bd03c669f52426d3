"""The audit writer: group commit of hash-chained records, before forwarding.

``await writer.record(rec)`` returns only once the transaction holding ``rec``
has COMMITted; a request is forwarded only after that. One writer task drains
a queue: an idle writer commits at once (lowest latency at low load); while a
commit is in flight, new records gather into the next batch. When the last
batch held several records (concurrency), the writer lingers up to
``audit_batch_wait_ms`` or until ``audit_batch_max`` records wait, the way
PostgreSQL's ``commit_delay`` applies only with ``commit_siblings``.

A batch is one transaction: compare-and-set of the chain head in
``audit_nodes``, a bulk insert of the records (Core ``insert`` with a list of
dicts: executemany), their rule ids, and a signed checkpoint when one is due.
The in-memory head advances only after COMMIT; after any failure it is
re-read from the database before the next batch, so a batch whose fate is
unknown (connection lost during COMMIT) can never fork the chain.

Failures: waiting ``record()`` callers get ``AuditUnavailable`` (the request
gets 503); outcome and un-awaited event records stay queued and are retried
with backoff, because nobody else will ever write them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.audit import nodes
from gateway.audit.chain import (
    canonical,
    chain_hash,
    decision_fields,
    event_fields,
    index_columns,
    outcome_fields,
)
from gateway.audit.ids import new_id
from gateway.audit.record import DecisionRecord, OutcomeRecord
from gateway.audit.signing import Signer, checkpoint_payload, load_signer
from gateway.audit.sqlite_fast import BatchWrite, ChainConflict, SqliteBatchStore
from gateway.audit.tables import audit_checkpoints, audit_decision_rules, audit_nodes, audit_records
from gateway.audit.writer_state import CheckpointState, register_key
from gateway.settings import Settings
from gateway.stages import AuditUnavailable

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
MAX_BACKOFF_S = 2.0


class StoreMoved(Exception):
    """The SQLite file this writer has open is no longer at its path."""


@dataclass(slots=True)
class _Pending:
    fields: dict[str, Any]
    columns: dict[str, Any]
    rule_ids: list[str]
    future: asyncio.Future[None] | None


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    records: int = 0
    failures: int = 0
    checkpoints: int = 0


class AuditWriter:
    """Implements ``gateway.stages.AuditSink``; build with ``build_audit_writer``."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        signer: Signer,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        busy_timeout_ms: int = 5000,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._signer = signer
        self._clock = clock
        self._busy_timeout_ms = busy_timeout_ms
        self._lease_s = lease_seconds
        self._base_id = nodes.default_base_id(settings.node_id)
        self._owner = nodes.new_owner()
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._conn: AsyncConnection | None = None
        self._head: nodes.Head | None = None
        self._head_stale = False
        self._db_identity: tuple[int, int] | None = None
        database = engine.url.database
        self._fast = (
            SqliteBatchStore(database, settings.sqlite_synchronous, busy_timeout_ms)
            if engine.dialect.name == "sqlite" and database and database != ":memory:" else None
        )
        self._cp = CheckpointState()
        self._last_batch_size = 0
        self._consecutive_failures = 0
        self._retry_at = 0.0
        self._last_heartbeat = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.stats = WriterStats()

    # --- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Claim a chain, load its head and start the writer task (fails loudly)."""
        conn = await self._connection()
        await register_key(conn, self._signer, self._clock())
        await self._claim(conn)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        """Flush every queued record, write a final checkpoint, release the chain."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            if self._head is not None and not self._head_stale:
                await self._write_checkpoint_now(force=True)
                await nodes.release_node(await self._connection(), self._head.node_id, self._owner)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself; say why
            log.error("audit writer stop: final checkpoint/release failed: %s", exc)
        finally:
            await self._drop_connection()
            if self._fast is not None:
                await self._fast.close()

    async def ping(self) -> None:
        """Readiness: the writer task runs and the store answers. Raises AuditUnavailable."""
        if self._task is None or self._task.done():
            raise AuditUnavailable("audit writer is not running")
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise AuditUnavailable(f"audit store unreachable: {exc}") from exc

    @property
    def node_id(self) -> str | None:
        return None if self._head is None else self._head.node_id

    @property
    def head(self) -> nodes.Head | None:
        return self._head

    @property
    def signer(self) -> Signer:
        return self._signer

    # --- the AuditSink interface ---------------------------------------------

    async def record(self, record: DecisionRecord) -> None:
        fields = decision_fields(record, self._settings.audit_ip_truncate)
        await self._enqueue(fields, list(record.rule_ids), wait=True)

    async def record_outcome(self, outcome: OutcomeRecord) -> None:
        await self._enqueue(outcome_fields(outcome), [], wait=False)

    async def record_event(self, kind: str, payload: dict[str, Any], *, wait: bool = True) -> str:
        """Append a ``policy_reload`` / ``quota_store`` (...) record; returns its id.

        With ``wait`` (default) returns after COMMIT and raises AuditUnavailable.
        """
        now = self._clock()
        fields = event_fields(new_id(int(now.timestamp() * 1000)), now, kind, payload)
        await self._enqueue(fields, [], wait=wait)
        return str(fields["id"])

    async def _enqueue(self, fields: dict[str, Any], rule_ids: list[str], wait: bool) -> None:
        if self._task is None or self._task.done():
            raise AuditUnavailable("audit writer is not running")
        canonical(fields)  # a field JSON cannot carry fails here, alone, not in a batch
        future: asyncio.Future[None] | None = (
            asyncio.get_running_loop().create_future() if wait else None
        )
        self._queue.append(_Pending(fields, index_columns(fields), rule_ids, future))
        if len(self._queue) >= self._settings.audit_batch_max:
            self._full.set()
        self._wakeup.set()
        if future is not None:
            await future

    # --- the writer task ---------------------------------------------------

    async def _run(self) -> None:
        tick = min(self._settings.audit_checkpoint_seconds, self._lease_s / 3)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=tick)
            self._wakeup.clear()
            while self._queue:
                if not self._stopping and await self._backing_off():
                    break
                await self._linger()
                batch = [self._queue.popleft()
                         for _ in range(min(len(self._queue), self._settings.audit_batch_max))]
                self._full.clear()
                await self._flush(batch)
            if self._stopping and not self._queue:
                return
            await self._periodic()

    async def _backing_off(self) -> bool:
        """After a failure, retry-only work waits; a waiting caller tries at once."""
        if self._consecutive_failures == 0 or any(p.future for p in self._queue):
            return False
        delay = self._retry_at - time.monotonic()
        if delay <= 0:
            return False
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
        except TimeoutError:
            return False
        return any(p.future is None for p in self._queue) and not self._stopping

    async def _linger(self) -> None:
        if (self._last_batch_size > 1 and not self._stopping
                and len(self._queue) < self._settings.audit_batch_max):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._full.wait(), timeout=self._settings.audit_batch_wait_ms / 1000
                )

    async def _flush(self, batch: list[_Pending]) -> None:
        try:
            await self._commit(batch)
        except Exception as exc:  # noqa: BLE001 - whatever broke, every waiter must hear it
            await self._failed(batch, exc)
            return
        self._consecutive_failures = 0
        self._last_batch_size = len(batch)
        self.stats.batches += 1
        self.stats.records += len(batch)
        for p in batch:
            if p.future is not None and not p.future.done():
                p.future.set_result(None)

    async def _failed(self, batch: list[_Pending], exc: BaseException) -> None:
        self.stats.failures += 1
        self._consecutive_failures += 1
        self._retry_at = time.monotonic() + min(
            0.05 * 2 ** (self._consecutive_failures - 1), MAX_BACKOFF_S
        )
        self._head = None if isinstance(exc, ChainConflict) else self._head
        self._head_stale = True
        await self._drop_connection()
        if self._fast is not None:
            await self._fast.reset()
        retry = [p for p in batch if p.future is None]
        log.error(
            "audit batch of %d records failed to commit (%s: %s); %d queued for retry",
            len(batch), type(exc).__name__, exc, 0 if self._stopping else len(retry),
        )
        error = AuditUnavailable(f"audit store cannot commit: {type(exc).__name__}: {exc}")
        for p in batch:
            if p.future is not None and not p.future.done():
                p.future.set_exception(error)
        if self._stopping:
            if retry:
                log.critical("audit writer stopping with %d uncommitted outcome/event "
                             "records that could not be written", len(retry))
            return
        self._queue.extendleft(reversed(retry))

    async def _commit(self, batch: list[_Pending]) -> None:
        conn = await self._connection()
        if self._head is None:
            await self._claim(conn)
        elif self._head_stale:
            await self._reload_head(conn)
        head = self._head
        assert head is not None
        seq, prev = head.seq, head.hash
        rows: list[dict[str, Any]] = []
        rule_rows: list[dict[str, str]] = []
        for p in batch:
            seq += 1
            p.fields["node_id"] = head.node_id
            p.fields["seq"] = seq
            body = canonical(p.fields)
            digest = chain_hash(prev, body)
            row = p.columns
            row["node_id"] = head.node_id
            row["seq"] = seq
            row["body"] = body.decode("utf-8")
            row["prev_hash"] = prev
            row["hash"] = digest
            rows.append(row)
            prev = digest
            for rule_id in p.rule_ids:
                rule_rows.append({"rule_id": rule_id, "decision_id": row["id"]})
        now = self._clock()
        checkpoint = (
            self._checkpoint_row(seq, prev, now) if self._cp.due(seq, self._settings) else None
        )
        write = BatchWrite(head.node_id, self._owner, head.seq, seq, prev, now, rows, rule_rows,
                           checkpoint)
        if self._fast is not None:
            await self._fast.commit(write)
        else:
            await self._commit_core(conn, write)
        self._check_db_file()
        self._head = nodes.Head(head.node_id, seq, prev)
        self._last_heartbeat = time.monotonic()
        if checkpoint:
            self._checkpointed(seq, prev)

    async def _commit_core(self, conn: AsyncConnection, b: BatchWrite) -> None:
        """The portable path (PostgreSQL): Core statements, executemany inserts."""
        async with conn.begin():
            result = await conn.execute(
                update(audit_nodes)
                .where(audit_nodes.c.node_id == b.node_id, audit_nodes.c.owner == b.owner,
                       audit_nodes.c.last_seq == b.old_seq)
                .values(last_seq=b.new_seq, last_hash=b.new_hash, heartbeat_at=b.now)
            )
            if result.rowcount != 1:
                raise ChainConflict(f"chain {b.node_id} moved or was taken over")
            await conn.execute(insert(audit_records), b.rows)
            if b.rule_rows:
                await conn.execute(insert(audit_decision_rules), b.rule_rows)
            if b.checkpoint:
                await conn.execute(insert(audit_checkpoints), [b.checkpoint])

    def _checkpoint_row(self, seq: int, head_hash: str, now: datetime) -> dict[str, Any]:
        assert self._head is not None
        count = seq - self._cp.seq
        payload = checkpoint_payload("checkpoint", self._head.node_id, seq, head_hash, count, now)
        return {
            "kind": "checkpoint", "node_id": self._head.node_id, "seq": seq,
            "head_hash": head_hash, "count": count, "ts": now,
            "key_fingerprint": self._signer.fingerprint,
            "payload": payload.decode("ascii"), "signature": self._signer.sign(payload),
        }

    def _checkpointed(self, seq: int, head_hash: str) -> None:
        self._cp.mark(seq)
        self.stats.checkpoints += 1
        # The log line is an outside witness of the head: it survives a database rollback.
        log.info("audit checkpoint node=%s seq=%d head=%s",
                 self._head.node_id if self._head else "?", seq, head_hash)

    async def _periodic(self) -> None:
        """Time-based checkpoint and lease heartbeat while idle."""
        if self._head is None or self._consecutive_failures:
            return
        try:
            if self._cp.due(self._head.seq, self._settings):
                await self._write_checkpoint_now(force=False)
            elif time.monotonic() - self._last_heartbeat > self._lease_s / 3:
                conn = await self._connection()
                async with conn.begin():
                    result = await conn.execute(
                        update(audit_nodes)
                        .where(audit_nodes.c.node_id == self._head.node_id,
                               audit_nodes.c.owner == self._owner)
                        .values(heartbeat_at=self._clock())
                    )
                if result.rowcount != 1:
                    raise ChainConflict("lease lost")
                self._last_heartbeat = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the next batch retries; say so loudly
            log.error("audit writer idle maintenance failed: %s: %s", type(exc).__name__, exc)
            self._head = None if isinstance(exc, ChainConflict) else self._head
            self._head_stale = True
            await self._drop_connection()

    async def _write_checkpoint_now(self, force: bool) -> None:
        head = self._head
        if head is None or head.seq <= self._cp.seq or (not force and not self._cp.due(
                head.seq, self._settings)):
            return
        conn = await self._connection()
        now = self._clock()
        row = self._checkpoint_row(head.seq, head.hash, now)
        async with conn.begin():
            result = await conn.execute(
                update(audit_nodes)
                .where(audit_nodes.c.node_id == head.node_id, audit_nodes.c.owner == self._owner,
                       audit_nodes.c.last_seq == head.seq)
                .values(heartbeat_at=now)
            )
            if result.rowcount != 1:
                raise ChainConflict(f"chain {head.node_id} moved or was taken over")
            await conn.execute(insert(audit_checkpoints), [row])
        self._last_heartbeat = time.monotonic()
        self._checkpointed(head.seq, head.hash)

    # --- connection and chain head ------------------------------------------

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._engine.connect()
            if self._engine.dialect.name == "sqlite":
                # Fail a batch (503) after this long behind another writer's lock,
                # rather than holding requests for the engine-wide 30 s.
                await conn.exec_driver_sql(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
                await conn.commit()
            self._conn = conn
            self._db_identity = self._db_file_identity()
        return self._conn

    def _db_file_identity(self) -> tuple[int, int] | None:
        database = self._engine.url.database
        if self._engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        try:
            st = os.stat(database)
        except OSError as exc:
            raise StoreMoved(f"database file {database} is gone: {exc}") from exc
        return (st.st_dev, st.st_ino)

    def _check_db_file(self) -> None:
        """SQLite in WAL mode happily commits into a file that was deleted or moved
        (the open descriptor still works): such a COMMIT is not durable where anyone
        will look, so it must not be acknowledged."""
        if self._db_identity is not None and self._db_file_identity() != self._db_identity:
            raise StoreMoved("the database file was replaced or moved since it was opened")

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.invalidate()
            await conn.close()
        except Exception as exc:  # noqa: BLE001 - a broken connection may fail to close
            log.warning("closing the audit connection failed: %s", exc)

    async def _claim(self, conn: AsyncConnection) -> None:
        self._head = await nodes.claim_node(
            conn, self._base_id, self._owner, self._clock(), self._lease_s
        )
        self._head_stale = False
        await self._cp.load(conn, self._head.node_id)
        self._last_heartbeat = time.monotonic()
        log.info("audit writer owns chain %s at seq %d", self._head.node_id, self._head.seq)

    async def _reload_head(self, conn: AsyncConnection) -> None:
        """Re-read the committed head after a failure (the last COMMIT may have landed)."""
        assert self._head is not None
        async with conn.begin():
            row = (await conn.execute(
                audit_nodes.select().where(audit_nodes.c.node_id == self._head.node_id)
            )).first()
        if row is None or row.owner != self._owner:
            self._head = None
            await self._claim(conn)
            return
        self._head = nodes.Head(self._head.node_id, int(row.last_seq), str(row.last_hash))
        await self._cp.load(conn, self._head.node_id)
        self._head_stale = False


def build_audit_writer(
    settings: Settings,
    engine: AsyncEngine,
    sessions: object = None,
    *,
    signer: Signer | None = None,
) -> AuditWriter:
    """The process's writer; ``await writer.start()`` in the lifespan, ``stop()`` at exit.

    ``sessions`` is accepted for symmetry with other factories; the writer uses
    its own connection from ``engine`` (no ORM session on the hot path).
    """
    del sessions
    return AuditWriter(engine, settings, signer or load_signer(settings))
