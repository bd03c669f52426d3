"""The streams in flight in this process, by customer and key: an account change
reaches every one of them.

An officer who suspends a customer or revokes a key expects its traffic to
stop now, on every replica. Each change reaches every process's identifier
(the admin API's own process at once, the others over the cluster bus or the
change feed within a second: ``gateway.ops.cluster``), which calls
``changed(kind, id)``. If streams of that customer (or key) are in flight
here, one task reads the account again (one read per key, not per stream)
and hands each stream's ``StreamPolicyWatch`` the new principal, or the
credential's refusal; the relay loop, which already asks the watch whether it
is ``due()`` per chunk, decides the stream again at its next chunk and ends
it if it is now refused (``gateway.proxy.cut`` says which refusals end it).

Nothing here runs per chunk, and nothing per request: a stream is added when
its relay starts and discarded when it ends (two dict operations, and a heap
push when it has a deadline, below), and a change with no stream in flight
costs a dict lookup.

A change that came after the request started but before its stream was added
(the upstream took a while to answer) is not missed: changes are remembered
for ``REMEMBER_S``, and a stream added after one of its account's is
checked at once.

Some changes are written nowhere: a key's own ``expires_at`` passes, the
OIDC token the stream was admitted on reaches its ``exp`` (plus leeway), the
customer's KYC lapses. Each stream's watch knows its soonest such instant
(``StreamPolicyWatch.deadline``); one timer for the soonest of all streams
(a heap of them, not a task or a timer per stream:
``gateway.proxy.stream_deadlines``) wakes each watch whose instant passed,
and the relay loop decides it again at its next chunk, as for a change. The
timer re-reads the wall clock at least every ``MAX_SLEEP_S``: the instants
are wall-clock ones, the loop's timers monotonic, and the two part when a
host is suspended or its clock stepped.

If the account cannot be read (database down), the read is retried every
``RETRY_S`` for ``ATTEMPTS`` attempts, then the streams are ended: told that
their account changed, the gateway cannot tell that it may still serve them
(fail closed, as a new request gets 503).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.identity.invalidation import InvalidationKind
from gateway.identity.principal import Principal
from gateway.identity.store import KeyRecord, load_customer, load_key
from gateway.ops import metrics
from gateway.proxy.cut import KEY_EXPIRED, Cut, StreamPolicyWatch
from gateway.proxy.stream_deadlines import COMPACT_MIN, StreamDeadlines

log = logging.getLogger("gateway.proxy")

REMEMBER_S = 900.0
"""How long a change is remembered for streams not added yet (beyond the
upstream's connect and first-byte timeouts)."""
RETRY_S = 1.0
ATTEMPTS = 5

Target = tuple[InvalidationKind, str]
UNCONFIRMED = Cut("identity-store-unavailable",
                  "the gateway cannot confirm this account after a change to it",
                  "account", 503)  # fmt: skip
"""What a stream whose account changed and cannot be read again ends with."""


def credential_refusal(record: KeyRecord | None, now_s: float) -> Cut | None:
    """The cut for a stream whose key is revoked, expired or gone, else None."""
    if record is None:
        return Cut("key-unknown", "gateway key no longer exists", "account", 401)
    if record.revoked:
        return Cut("key-revoked", "gateway key revoked", "account", 401)
    if record.expires_at is not None and now_s >= record.expires_at.timestamp():
        return KEY_EXPIRED
    return None


class LiveStreams(StreamDeadlines):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.perf_counter,
        retry_s: float = RETRY_S,
    ) -> None:
        super().__init__(wall_clock)
        self._sessions = sessions
        self._retry_s = retry_s
        self._clock = clock
        self._by_customer: defaultdict[str, set[StreamPolicyWatch]] = defaultdict(set)
        self._by_key: defaultdict[str, set[StreamPolicyWatch]] = defaultdict(set)
        self._changed_at: dict[Target, float] = {}
        """Recent changes, oldest first (``clock`` time)."""
        self._running: dict[Target, asyncio.Task[None]] = {}
        self._again: set[Target] = set()
        self.reads = 0

    # --- the relay loop's side: per stream, never per chunk ----------------

    def add(self, watch: StreamPolicyWatch, since: float) -> None:
        """Follow ``watch``'s account; ``since``: when its request started (``clock`` time)."""
        self._by_customer[watch.customer_id].add(watch)
        if watch.key_id is not None:
            self._by_key[watch.key_id].add(watch)
        for target in self._targets(watch):
            if self._changed_at.get(target, -1.0) >= since:
                self._schedule(target)  # changed while the request was on its way
        watch.on_deadline = self._deadline_moved
        self._deadline_moved(watch)

    def discard(self, watch: StreamPolicyWatch) -> None:
        watch.on_deadline = None  # its deadline entry, if any, is stale from now on
        if watch.deadline != math.inf:
            # Dropped once they are most of the heap: after a burst of streams,
            # a quiet worker would otherwise keep every watch (principal, facts,
            # bundle) until new streams grew the heap again, or months ahead.
            self._stale += 1
            if self._stale * 2 > len(self._deadlines) >= COMPACT_MIN:
                self._compact()
        for index, ident in ((self._by_customer, watch.customer_id),
                             (self._by_key, watch.key_id)):  # fmt: skip
            if ident is None:
                continue
            watches = index.get(ident)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del index[ident]

    @property
    def count(self) -> int:
        return sum(len(w) for w in self._by_customer.values())

    # --- the identifier's side ---------------------------------------------

    def changed(self, kind: InvalidationKind, ident: str) -> None:
        """An identifier ``on_change`` listener: the customer or key ``ident`` changed."""
        now = self._clock()
        target = (kind, ident)
        self._changed_at.pop(target, None)
        self._changed_at[target] = now
        while self._changed_at:
            oldest, at = next(iter(self._changed_at.items()))
            if now - at < REMEMBER_S:
                break
            del self._changed_at[oldest]
        if self._watches(target):
            self._schedule(target)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    def _targets(self, watch: StreamPolicyWatch) -> Iterable[Target]:
        yield ("customer", watch.customer_id)
        if watch.key_id is not None:
            yield ("key", watch.key_id)

    def _watches(self, target: Target) -> set[StreamPolicyWatch]:
        kind, ident = target
        index = self._by_customer if kind == "customer" else self._by_key
        return index.get(ident) or set()

    def _schedule(self, target: Target) -> None:
        """One task per target at a time; a change during its read runs it once more."""
        running = self._running.get(target)
        if running is not None and not running.done():
            self._again.add(target)
            return
        task = asyncio.get_running_loop().create_task(self._recheck(target))
        self._running[target] = task
        task.add_done_callback(lambda done: self._forget(target, done))

    def _forget(self, target: Target, task: asyncio.Task[None]) -> None:
        if self._running.get(target) is task:
            del self._running[target]
        if not task.cancelled() and task.exception() is not None:
            log.error("re-deciding the streams of %s %s failed", *target,
                      exc_info=task.exception())  # fmt: skip

    async def _recheck(self, target: Target) -> None:
        again = True
        while again:
            self._again.discard(target)
            await self._recheck_once(target)
            again = target in self._again

    async def _recheck_once(self, target: Target) -> None:
        watches = list(self._watches(target))
        by_key: defaultdict[str | None, list[StreamPolicyWatch]] = defaultdict(list)
        for watch in watches:
            by_key[watch.key_id].append(watch)
        for key_id, group in by_key.items():
            try:
                news = await self._read_with_retries(group[0].customer_id, key_id)
            except Exception:  # a bug here must not leave a changed account streaming
                metrics.CLUSTER_ERRORS.labels("account_recheck").inc()
                log.exception("re-deciding the streams of customer %s (key %s) failed: "
                              "ending them", group[0].customer_id, key_id)  # fmt: skip
                news = UNCONFIRMED
            for watch in group:
                watch.account_changed(news)

    async def _read_with_retries(self, customer_id: str, key_id: str | None) -> Principal | Cut:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._read(customer_id, key_id)
            except (SQLAlchemyError, OSError) as exc:
                metrics.CLUSTER_ERRORS.labels("account_recheck").inc()
                log.error("cannot read account %s (key %s) after a change, attempt %d of %d: %s",
                          customer_id, key_id, attempt, ATTEMPTS, exc)  # fmt: skip
                if attempt < ATTEMPTS:
                    await asyncio.sleep(self._retry_s)
        return UNCONFIRMED

    async def _read(self, customer_id: str, key_id: str | None) -> Principal | Cut:
        self.reads += 1
        async with self._sessions() as session:
            if key_id is None:
                principal = await load_customer(session, customer_id)
                if principal is None:
                    return Cut("customer-unknown", "customer no longer exists", "account", 401)
                return principal
            record = await load_key(session, key_id)
        refused = credential_refusal(record, self._wall())
        if refused is not None:
            return refused
        assert record is not None
        return record.principal
