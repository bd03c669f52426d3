"""Bookkeeping of an audit-store outage: what the writer logs, and what /readyz asks.

One log line per failed batch flooded the log in an outage (hundreds a second
under load): the first failure of an outage is logged whole, the rest at most
every ``LOG_INTERVAL_S`` as a count with the last error, and the first commit
that succeeds again closes it with one line. Each failure still fails its
requests (503) and counts in ``gateway_audit_batch_failures_total``; this only
decides what is said about it.
"""

from __future__ import annotations

import logging
import time

from gateway.audit.batch import store_error

log = logging.getLogger("gateway.audit.writer")

LOG_INTERVAL_S = 10.0
"""While the store keeps failing, one summary line per this long."""
FAILING_WITHIN_S = 30.0
"""/readyz reports a failed audit commit for this long unless one succeeds."""


class OutageLog:
    __slots__ = ("_last_failure_at", "_logged_at", "batches", "records")

    def __init__(self) -> None:
        self.batches = 0
        self.records = 0
        self._logged_at = 0.0
        self._last_failure_at = 0.0

    def failed(self, size: int, exc: BaseException, queued: int) -> None:
        self.batches += 1
        self.records += size
        now = self._last_failure_at = time.monotonic()
        if self.batches == 1:
            self._logged_at = now
            log.error("audit batch of %d records failed to commit (%s); %d queued for retry",
                      size, store_error(exc), queued)  # fmt: skip
        elif now - self._logged_at >= LOG_INTERVAL_S:
            self._logged_at = now
            log.error("audit store still failing: %d batches (%d records) failed so far, the "
                      "last with %s", self.batches, self.records, store_error(exc))  # fmt: skip

    def recovered(self) -> None:
        if self.batches:
            log.warning("audit store committing again after %d failed batches (%d records)",
                        self.batches, self.records)  # fmt: skip
            self.batches = self.records = 0

    def failing(self, within_s: float = FAILING_WITHIN_S) -> bool:
        """Did the last commit attempt fail, less than ``within_s`` ago?"""
        return self.batches > 0 and time.monotonic() - self._last_failure_at < within_s
