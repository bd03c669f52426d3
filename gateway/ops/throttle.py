"""At most one log line per interval for a condition that may recur per request.

A failure on the request path must be loud (DESIGN: a metric and a log line),
but one line per request turns a broken lookup or a misconfigured proxy under
load into a log flood. ``Throttle.due`` says when the next line may go out
and how many occurrences it stands for; a counter metric counts every one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

INTERVAL_SECONDS = 60.0


class Throttle:
    def __init__(
        self, interval: float = INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._held = 0

    def due(self) -> int:
        """Occurrences this line stands for (this one included), or 0: stay quiet."""
        self._held += 1
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return 0
        self._last = now
        count, self._held = self._held, 0
        return count
