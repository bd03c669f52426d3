"""The deadline half of ``gateway.proxy.live_streams``: instants at which a
stream must be decided again though nothing is written anywhere (a key's
``expires_at``, an OIDC token's ``exp``, a customer's KYC lapse).

Each stream's watch knows its soonest such instant
(``StreamPolicyWatch.deadline``); one timer for the soonest of all streams (a
heap of them, not a task or a timer per stream) wakes each watch whose
instant passed. The timer re-reads the wall clock at least every
``MAX_SLEEP_S``: the instants are wall-clock ones, the loop's timers
monotonic, and the two part when a host is suspended or its clock stepped.

A base class of ``LiveStreams`` rather than an object it holds: the relay
adds and discards each stream there, and those reach the heap directly, with
no call or attribute hop more than when it all lived in one class.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable

from gateway.proxy.cut import StreamPolicyWatch

MAX_SLEEP_S = 60.0
"""The deadline timer's longest sleep (module doc): one wake-up a minute at most
while a stream's deadline lies further ahead."""
COMPACT_MIN = 64
"""The fewest entries at which the heap is compacted: once it has doubled since
the last compaction, or once ended streams' entries are most of it
(``LiveStreams.discard``)."""

Deadline = tuple[float, int, StreamPolicyWatch]
"""A heap entry: (wall-clock instant, insertion order, watch)."""


def _current(entry: Deadline) -> bool:
    """Whether ``entry`` is still its watch's deadline (not moved, not discarded)."""
    at, _, watch = entry
    return watch.on_deadline is not None and watch.deadline == at


class StreamDeadlines:
    def __init__(self, wall_clock: Callable[[], float]) -> None:
        self._wall = wall_clock
        self._deadlines: list[Deadline] = []
        """A heap; entries whose watch moved its deadline or ended are left to
        be skipped when popped, and dropped when the heap doubles (``_compact``)."""
        self._order = itertools.count()
        self._compact_at = COMPACT_MIN
        self._stale = 0
        """Entries of ended streams since the last compaction (``discard``)."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def _deadline_moved(self, watch: StreamPolicyWatch) -> None:
        at = watch.deadline
        if at == math.inf:
            return
        heapq.heappush(self._deadlines, (at, next(self._order), watch))
        if len(self._deadlines) >= self._compact_at:
            self._compact()
        if at < self._timer_at:
            self._arm()

    def _compact(self) -> None:
        self._stale = 0
        self._deadlines = [entry for entry in self._deadlines if _current(entry)]
        heapq.heapify(self._deadlines)
        self._compact_at = max(COMPACT_MIN, 2 * len(self._deadlines))

    def _arm(self) -> None:
        """One timer, for the soonest current deadline (or ``MAX_SLEEP_S``)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf
        heap = self._deadlines
        while heap and not _current(heap[0]):
            heapq.heappop(heap)
        if not heap:
            return
        at = heap[0][0]
        delay = min(max(at - self._wall(), 0.0), MAX_SLEEP_S)
        self._timer = asyncio.get_running_loop().call_later(delay, self._deadlines_passed)
        self._timer_at = at

    def _deadlines_passed(self) -> None:
        self._timer = None
        now = self._wall()
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if _current(entry):
                entry[2].wake()  # its check() moves its deadline past this one
        self._arm()
