"""The audit writer: group commit of hash-chained records, before forwarding.

``await writer.record(rec)`` returns only once the transaction holding ``rec``
has COMMITted; a request is forwarded only after that. One writer task drains
a queue. Group commit is natural: an idle writer commits at once (lowest
latency), and while a commit runs on the store's thread, new records pile up
and the next batch takes all of them (up to ``audit_batch_max``). With
``audit_batch_wait_ms`` > 0 the writer also lingers before a batch, up to
that long, but only while records are still coming: the pipeline calls
``expect_decision()`` when a request starts its walk (``record()`` or
``cancel_expected()`` takes it back); the writer sleeps while announced
requests have not recorded yet, then lets the loop run one iteration at a
time while each brings new waiting records (``_linger``). A lone caller is
never delayed, and on a busy loop one COMMIT and one fsync carry the records
of every request that was mid-pipeline (PostgreSQL's ``commit_delay`` and
``commit_siblings``, with callers counted rather than guessed).

Records nobody awaits (outcomes, background events) do not trigger a commit
of their own: they ride along with the next awaited batch, or are flushed
after ``UNAWAITED_FLUSH_S`` of quiet, when the queue is full, and at
``stop()``. So a SIGKILL can lose at most that window of outcomes; a normal
shutdown loses none; an acknowledged decision is never lost.

Failures (the policy is ``gateway.audit.failures``): waiting ``record()``
callers get ``AuditUnavailable`` (the request gets 503); un-awaited records
are retried with backoff, because nobody else will ever write them. A batch
the store refuses for one record's value (a data or integrity error, not an
outage: ``batch.refused_value``) is committed again record by record, so one
bad request cannot cost the others theirs. Retries go in batches of their
own, never mixed with waiting callers' records (a record that can never commit must not take every
decision down with it), and a retried record that is already stored (its
batch landed although the COMMIT reported failure) is not written twice. The
chain head is re-read (``chain_session``) before the next batch.

An ownership tree a decision names by digest rides with it (``Pending.snapshot``)
and is inserted in the same transaction unless this writer saw it committed
before (``ownership_snapshots.py``): a failed batch takes its trees with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import nodes
from gateway.audit.batch import (
    Pending,
    build_whole_groups,
    commit_core,
    keep_time,
    one_group,
    refused_value,
    sqlite_time,
    store_error,
    units,
)
from gateway.audit.chain import canonical, decision_fields, event_fields, outcome_fields
from gateway.audit.chain_session import ChainSession
from gateway.audit.failures import RetryQueue, bounded_attempt, fail_queued, fail_waiters, refuse
from gateway.audit.ids import new_id
from gateway.audit.outage import FAILING_WITHIN_S
from gateway.audit.ownership_snapshots import note_stored
from gateway.audit.record import KIND_LEN, DecisionRecord, OutcomeRecord
from gateway.audit.signing import Signer, load_signer
from gateway.audit.sqlite_fast import SqliteBatchStore, StoreMoved, WalCheckpointer
from gateway.audit.writer_state import register_key
from gateway.identity.ownership_snapshot import OwnershipSnapshot
from gateway.settings import Settings
from gateway.stages import AuditUnavailable

__all__ = ["AuditWriter", "StoreMoved", "WriterStats", "build_audit_writer"]

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
UNAWAITED_FLUSH_S = 0.05


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
        self._batch_max = settings.audit_batch_max
        self._linger_s = settings.audit_batch_wait_ms / 1000
        self._attempt_s = settings.database_timeout_seconds
        self._chain = ChainSession(engine, settings, signer, clock, busy_timeout_ms,
                                   lease_seconds, self._count_checkpoint)
        database = engine.url.database
        fast = engine.dialect.name == "sqlite" and database and database != ":memory:"
        self._fast = (SqliteBatchStore(database, settings.sqlite_synchronous, busy_timeout_ms)
                      if fast and database else None)
        self._wal = (WalCheckpointer(database, settings.sqlite_synchronous)
                     if fast and database else None)
        self._time_param: Callable[[datetime], Any] = sqlite_time if self._fast else keep_time
        self._queue: deque[Pending] = deque()
        self._retry = RetryQueue()  # un-awaited records whose batch failed
        # Ownership snapshots this writer saw committed: not inserted again. Only
        # after COMMIT, so a record never names a tree that is not durable.
        self._snapshots: set[str] = set()
        self._awaited = 0  # records in the queue whose caller waits for COMMIT
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._expected = 0  # requests mid-pipeline that will record a decision soon
        self._last_awaited = 0  # waiting callers in the last batch (1: no concurrency seen)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.stats = WriterStats()

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

    # --- the writer task ---------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _arm(self, deadline: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = deadline
        self._timer = self._loop.call_at(deadline, self._wake)

    async def _sleep(self, deadline: float) -> None:
        """Until ``deadline`` (loop time) or ``_wake``: one future and one timer handle."""
        assert self._loop is not None
        self._waiter = self._loop.create_future()
        self._arm(deadline)
        try:
            await self._waiter
        finally:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _flush_at(self, now: float) -> float:
        """Loop time at which the queued records should go (<= now: at once)."""
        if self._stopping or len(self._queue) >= self._batch_max:
            return now
        if self._awaited:
            return now
        return self._queue[0].at + UNAWAITED_FLUSH_S

    async def _run(self) -> None:
        assert self._loop is not None
        loop = self._loop
        tick = min(self._settings.audit_checkpoint_seconds, self._chain.lease_s / 3)
        retry = self._retry
        while True:
            now = loop.time()
            if retry.records and (self._stopping or now >= retry.at):
                await self._flush(self._take(retry.records), retried=True)
                continue
            if self._queue:
                at = self._flush_at(now)
                if at <= now:
                    await self._linger(now)
                    await self._flush(self._take(self._queue))
                    continue
                await self._sleep(min(at, retry.at) if retry.records else at)
                continue
            if retry.records:
                await self._sleep(retry.at)
                continue
            if self._stopping:
                return
            await self._sleep(now + tick)
            if not self._queue:
                await self._chain.idle_maintenance()

    async def _linger(self, now: float) -> None:
        """Wait, up to the linger time, while records are still coming.

        A lone request is never delayed: with no announced request still on
        its way (``expect_decision``) and no sign of concurrency (the last
        batch had one waiting caller), there is no wait at all. Otherwise the
        writer sleeps while announced requests are on their way (woken by each
        record, so a request waiting on Redis or a slow upload costs time,
        bounded by the linger, never a busy loop), then lets the loop run one
        iteration at a time for as long as each brings new waiting records:
        requests that arrive and reach the audit stage within one iteration
        (the usual case on a busy gateway) join this commit instead of
        starting the next one.
        """
        if self._linger_s <= 0 or self._stopping:
            return
        if not self._expected and self._last_awaited <= 1:
            return
        loop = self._loop
        assert loop is not None
        deadline = now + self._linger_s
        while (len(self._queue) < self._batch_max and loop.time() < deadline
               and not self._stopping):
            if self._expected:
                await self._sleep(deadline)
            waiting = self._awaited
            await asyncio.sleep(0)
            if self._awaited == waiting and not self._expected:
                return

    def _take(self, q: deque[Pending]) -> list[Pending]:
        if len(q) <= self._batch_max:
            batch = list(q)
            q.clear()
        else:
            batch = [q.popleft() for _ in range(self._batch_max)]
            group = batch[-1].group
            while group is not None and q and q[0].group is group:
                batch.append(q.popleft())  # a group commits whole (``record_many``)
        if q is self._queue:
            awaited = sum(1 for p in batch if p.future is not None)
            self._awaited -= awaited
            self._last_awaited = awaited
        return batch

    async def _flush(self, batch: list[Pending], retried: bool = False) -> None:
        try:
            if retried:
                stored = await self._chain.stored_ids([str(p.fields["id"]) for p in batch])
                batch = [p for p in batch if p.fields["id"] not in stored]
            accepted = await self._commit(batch) if batch else []
        except Exception as exc:  # noqa: BLE001 - whatever broke, every waiter must hear it
            if len(batch) > 1 and refused_value(exc) and not one_group(batch):
                await self._one_by_one(batch, exc, retried)
            else:
                await self._failed(batch, exc)
            return
        retry = self._retry
        if retried or not retry.records:
            retry.failures = 0  # the backoff grows while retries keep failing
        if accepted:
            retry.outage.recovered()
        stats = self.stats
        stats.batches += 1
        stats.records += len(accepted)
        for p in accepted:
            if p.future is not None and not p.future.done():
                p.future.set_result(None)

    async def _commit(self, batch: list[Pending]) -> list[Pending]:
        if self._fast is not None:
            # Bounded by SQLite's busy timeout; the commit runs on a thread that
            # a cancelled await would not stop, so it is never cut short here.
            return await self._commit_batch(batch)
        assert self._loop is not None
        return await bounded_attempt(self._loop, self._attempt_s, self._chain.terminate,
                                     self._commit_batch(batch))  # fmt: skip

    async def _commit_batch(self, batch: list[Pending]) -> list[Pending]:
        chain = self._chain
        head = await chain.current()
        now = self._clock()
        built = build_whole_groups(batch, head.node_id, chain.owner, head.seq, head.hash, now,
                                   self._time_param, self._snapshots)
        for p, exc in built.refused:
            refuse(p, exc)
        write = built.write
        if not write.rows:
            return []
        if chain.checkpoint_due(write.new_seq):
            await chain.read_others()
            write.checkpoint = chain.checkpoint_row(write.new_seq, write.new_hash, now)
        if self._fast is not None:
            await self._fast.commit(write)
        else:
            await commit_core(await chain.connection(), write)
        chain.advanced(nodes.Head(head.node_id, write.new_seq, write.new_hash))
        if write.snapshots:
            note_stored(self._snapshots, write.snapshots)
        if write.checkpoint:
            chain.checkpointed(write.checkpoint)
        return built.accepted

    async def _one_by_one(self, batch: list[Pending], exc: BaseException, retried: bool) -> None:
        """The store refused a value, not the batch: commit each record alone.

        Nothing of the batch committed (the error came before COMMIT) and the
        head is re-read first, so the records are chained afresh; only the one
        the store refuses again fails (its request gets 503, an un-awaited one
        is retried like any failed record), with its group if it has one (a
        group is committed as one unit). An outage keeps failing the batch
        whole, fail closed, as before.
        """
        why = store_error(exc)
        log.error("audit batch of %d records: the store refused a value (%s); committing "
                  "them one by one", len(batch), why)
        await self._chain.failed(exc)
        if self._fast is not None:
            await self._fast.reset()
        for unit in units(batch):
            await self._flush(unit, retried)

    async def _failed(self, batch: list[Pending], exc: BaseException) -> None:
        # The callers first: whatever the bookkeeping below does, no request
        # may be left waiting for an answer that never comes.
        error = fail_waiters(batch, exc)
        # Then those queued behind the failed attempt; not for a record the
        # store refused for its own value (``_one_by_one``): that is no
        # outage, and must cost nobody else their request.
        if self._awaited and not refused_value(exc):
            self._queue = fail_queued(self._queue, error)
            self._awaited = 0
        self.stats.failures += 1
        assert self._loop is not None
        self._retry.back_off(self._loop.time())
        await self._chain.failed(exc)
        if self._fast is not None:
            await self._fast.reset()
        self._retry.keep(batch, exc, self._stopping)

    def _count_checkpoint(self) -> None:
        self.stats.checkpoints += 1


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
