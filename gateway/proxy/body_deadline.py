"""A bound on the time to read a request body, kept by one timer for all requests.

Neither uvicorn nor the ASGI interface bounds how long a body may take: a
client that sends its headers and then one byte every half second
(slowloris), or nothing at all, would hold its request, connection and task
for as long as it liked. Every body read registers its task here; one timer
per process, armed only while some read is pending, ticks a counter and
cancels the reads whose deadline (in ticks) has come, and
``asgi_io.read_body`` answers them 408.

Why not ``asyncio.timeout`` around each read: arming and cancelling a timer
cost 6-20 us per request under uvloop on the hosts this was measured on,
paid by every request although nearly every body arrives in the first
message. Here a request pays for a dict insert and removal (no clock read:
deadlines are counted in ticks). A body is cut off between ``seconds`` and
``seconds`` plus one tick (a quarter of the bound, at most a second) after
its read began, never sooner.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

Task = asyncio.Task[Any]


class BodyDeadlines:
    __slots__ = ("_expired", "_reading", "_span", "_tick", "_ticks", "_timer", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tick = min(1.0, seconds / 4)
        # +1: a read that starts just before a tick must still get ``seconds``.
        self._span = math.ceil(seconds / self._tick) + 1
        self._ticks = 0
        self._reading: dict[Task, int] = {}
        """Task reading a body -> the tick its body must be whole by."""
        self._expired: set[Task] = set()
        """Tasks this bound cancelled, until they have seen it (``expired``)."""
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, task: Task) -> None:
        """Start the clock for ``task``'s body read; ``unwatch`` it when the read ends.

        ``task`` must be the running task, suspended only at its receive calls
        until ``unwatch``: the cancel lands there, and nowhere else.
        """
        self._reading[task] = self._ticks + self._span
        if self._timer is None:
            self._timer = task.get_loop().call_later(self._tick, self._sweep)

    def unwatch(self, task: Task) -> None:
        del self._reading[task]

    def expired(self, task: Task) -> bool:
        """Whether the cancellation ``task`` caught is this bound's, and only its.

        Like ``asyncio.timeout``: the cancel request is withdrawn, and if
        another one is still pending (shutdown), it is not ours to swallow.
        """
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return task.uncancel() == 0

    def _sweep(self) -> None:
        self._ticks = now = self._ticks + 1
        # Cancelling only schedules the CancelledError: nothing here runs the
        # tasks, so the dict does not change while it is walked.
        for task, deadline in self._reading.items():
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        if self._reading:
            self._timer = asyncio.get_running_loop().call_later(self._tick, self._sweep)
        else:
            self._timer = None
