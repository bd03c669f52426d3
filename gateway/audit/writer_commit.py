"""The audit writer's batch commit and what a failed one costs.

``BatchCommitter`` holds the writer's state (the queue, the retry queue, the
chain session, the SQLite fast store) and turns one batch taken off a queue
into one transaction: the records chained onto the head (``build_whole_groups``),
a checkpoint when one is due, one COMMIT; then each waiting caller is answered.

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

When a batch goes is ``writer_schedule``'s part, the calls a request makes
``writer``'s (both subclass this one: see ``writer``'s docstring for why).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
from gateway.audit.chain_session import ChainSession
from gateway.audit.failures import RetryQueue, bounded_attempt, fail_queued, fail_waiters, refuse
from gateway.audit.ownership_snapshots import note_stored
from gateway.audit.signing import Signer
from gateway.audit.sqlite_fast import SqliteBatchStore, WalCheckpointer
from gateway.settings import Settings

# The writer's logger whichever module of it logs (operators and tests filter on it).
log = logging.getLogger("gateway.audit.writer")

LEASE_SECONDS = 30.0


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    records: int = 0
    failures: int = 0
    checkpoints: int = 0


class BatchCommitter:
    """The writer's state and its commit of one batch; ``AuditWriter`` is the class to use."""

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
            if self._fast is not None:
                # Read and signed inside the commit's own thread call: reading the
                # other chains' heads here first cost the batch two more database
                # round trips (~1 ms at one connection, once per checkpoint).
                write.make_checkpoint = functools.partial(
                    chain.checkpoint_seeing, write.new_seq, write.new_hash, now)
            else:
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
