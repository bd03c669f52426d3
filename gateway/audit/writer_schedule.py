"""The audit writer's task: when a batch goes, and which records it takes.

Group commit is natural: an idle writer commits at once (lowest latency),
and while a commit runs on the store's thread, new records pile up and the
next batch takes all of them (up to ``audit_batch_max``). With
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
``stop()``.
"""

from __future__ import annotations

import asyncio
from collections import deque

from gateway.audit.batch import Pending
from gateway.audit.writer_commit import BatchCommitter

UNAWAITED_FLUSH_S = 0.05


class BatchScheduler(BatchCommitter):
    """The writer task over ``BatchCommitter``'s state; ``AuditWriter`` is the class to use."""

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
