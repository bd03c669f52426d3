"""The audit writer: group commit of hash-chained records, before forwarding.

``await writer.record(rec)`` returns only once the transaction holding ``rec``
has COMMITted; a request is forwarded only after that. One writer task drains
a queue, committing each batch it takes in one transaction. The writer is
three layers of one class, each in its own module:

- ``writer`` (here): ``AuditWriter``, its lifecycle and the ``AuditSink``
  calls the pipeline makes per request (``record``, ``expect_decision``, ...);
- ``writer_schedule``: the writer task, when a batch goes (group commit, the
  linger, the flush of un-awaited records) and what it takes;
- ``writer_commit``: the writer's state, the commit of one batch, and what a
  failed one costs (503 for the waiting callers, retries for the rest).

Layers, not parts the writer holds: ``record()`` runs per request, and a
subclass reaches ``_push``, ``_wake`` and the queue as ``self``'s own, with no
extra call or attribute hop.

Records nobody awaits (outcomes, background events) can be lost to a SIGKILL
within ``UNAWAITED_FLUSH_S``; a normal shutdown loses none; an acknowledged
decision is never lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import nodes
from gateway.audit.batch import Pending
from gateway.audit.chain import canonical, decision_fields, event_fields, outcome_fields
from gateway.audit.ids import new_id
from gateway.audit.outage import FAILING_WITHIN_S
from gateway.audit.record import KIND_LEN, DecisionRecord, OutcomeRecord
from gateway.audit.signing import Signer, load_signer
from gateway.audit.sqlite_fast import StoreMoved
from gateway.audit.writer_commit import LEASE_SECONDS, WriterStats, log
from gateway.audit.writer_schedule import UNAWAITED_FLUSH_S, BatchScheduler
from gateway.audit.writer_state import register_key
from gateway.identity.ownership_snapshot import OwnershipSnapshot
from gateway.settings import Settings
from gateway.stages import AuditUnavailable

__all__ = ["LEASE_SECONDS", "AuditWriter", "StoreMoved", "WriterStats", "build_audit_writer"]


class AuditWriter(BatchScheduler):
    """Implements ``gateway.stages.AuditSink``; build with ``build_audit_writer``."""

    # --- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Claim a chain, load its head and start the writer task (fails loudly)."""
        self._loop = asyncio.get_running_loop()
        await register_key(await self._chain.connection(), self._signer, self._clock())
        await self._chain.claim()
        self._stopping = False
        if self._wal is not None:
            self._wal.start()
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        """Flush every queued record, write a final checkpoint, release the chain."""
        self._stopping = True
        self._wake()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            if not self._chain.stale:
                await self._chain.write_checkpoint(force=True)
                await self._chain.release()
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself; say why
            log.error("audit writer stop: final checkpoint/release failed: %s", exc)
        finally:
            await self._chain.drop_connection()
            if self._wal is not None:
                await asyncio.to_thread(self._wal.stop)
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

    def commit_failing(self, within_s: float = FAILING_WITHIN_S) -> bool:
        """For /readyz: did the last commit attempt fail, less than ``within_s`` ago?

        The database may answer ``SELECT 1`` while every decision record is
        refused (a revoked grant, a full disk, a lost chain lease): that
        replica answers 503 to everything and is not ready. Recent failures
        only, so a replica the load balancer took out of rotation (no traffic,
        so no commit to succeed) is offered traffic again to try."""
        return self._retry.outage.failing(within_s)

    @property
    def node_id(self) -> str | None:
        return None if self._chain.head is None else self._chain.head.node_id

    @property
    def head(self) -> nodes.Head | None:
        return self._chain.head

    @property
    def signer(self) -> Signer:
        return self._signer

    # --- the AuditSink interface ---------------------------------------------

    def expect_decision(self) -> None:
        """A request started its walk: its decision record will come soon (batching hint)."""
        self._expected += 1

    def cancel_expected(self) -> None:
        """A request announced by ``expect_decision`` ended without recording."""
        if self._expected:
            self._expected -= 1
            self._wake()  # a lingering writer re-checks whether anyone is still coming

    async def record(self, record: DecisionRecord) -> None:
        if self._expected:
            self._expected -= 1
        fields = decision_fields(record, self._settings.audit_ip_truncate)
        future = self._push(fields, record.index_keys(), wait=True,
                            snapshot=record.ownership_snapshot)
        assert future is not None
        await future

    async def record_many(self, records: list[DecisionRecord]) -> None:
        """Several decisions of one request (a Message Batch's inner requests):
        committed in one transaction, all or none, even past ``audit_batch_max``
        (``_take`` never cuts a group); returns once they are committed (raises
        AuditUnavailable as ``record`` does, and then none of them is stored:
        a batch refused for one record must not leave "allow" records of
        requests that were never forwarded)."""
        if self._expected:
            self._expected -= 1
        futures = []
        group = object()
        for record in records:
            fields = decision_fields(record, self._settings.audit_ip_truncate)
            future = self._push(fields, record.index_keys(), wait=True, group=group,
                                snapshot=record.ownership_snapshot)
            assert future is not None
            futures.append(future)
        await asyncio.gather(*futures)

    async def record_outcome(self, outcome: OutcomeRecord) -> None:
        self._push(outcome_fields(outcome), [], wait=False)

    async def record_event(self, kind: str, payload: dict[str, Any], *, wait: bool = True,
                           record_id: str | None = None) -> str:
        """Append a ``policy_reload`` / ``quota_store`` (...) record; returns its id.

        With ``wait`` (default) returns after COMMIT and raises AuditUnavailable.
        ``record_id``: an id handed out before the record could be written (a
        ``probes_limited`` summary's, given to the answers it accounts for).
        """
        if len(kind) > KIND_LEN:
            # PostgreSQL would refuse the row at commit, long after this call.
            raise ValueError(f"record kind {kind!r} is longer than {KIND_LEN} characters")
        now = self._clock()
        fields = event_fields(record_id or new_id(int(now.timestamp() * 1000)), now, kind, payload)
        canonical(fields)  # a free-form payload JSON cannot carry fails here, for the caller
        future = self._push(fields, [], wait=wait)
        if future is not None:
            await future
        return str(fields["id"])

    def _push(self, fields: dict[str, Any], rule_ids: list[str], wait: bool,
              group: object | None = None,
              snapshot: OwnershipSnapshot | None = None) -> asyncio.Future[None] | None:
        loop = self._loop
        if self._task is None or self._task.done() or loop is None:
            raise AuditUnavailable("audit writer is not running")
        future = loop.create_future() if wait else None
        self._queue.append(Pending(fields, rule_ids, future, loop.time(), group, snapshot))
        if wait:
            self._awaited += 1
            self._wake()
        elif len(self._queue) >= self._batch_max:
            self._wake()
        elif self._waiter is not None:
            # The writer sleeps: make sure it is up within the flush delay (re-arm
            # its timer, do not wake it; an awaited record usually comes first).
            due = loop.time() + UNAWAITED_FLUSH_S
            if self._deadline > due:
                self._arm(due)
        return future


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
