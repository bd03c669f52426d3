"""The audit writer's failure policy: a bounded commit attempt, and what a failed one costs.

A failed batch answers its waiting callers (``AuditUnavailable``: their
requests get 503) before anything else, and with them every caller queued
behind it (``fail_queued``): each caller waits at most the attempt it arrived
during. Records nobody awaits (outcomes, events) are kept and retried with a
capped exponential backoff (``RetryQueue``), because nobody else will ever
write them. What is logged about an outage is ``gateway.audit.outage``'s part.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.audit.batch import Pending, store_error
from gateway.audit.outage import OutageLog
from gateway.stages import AuditUnavailable

log = logging.getLogger("gateway.audit.writer")

MAX_BACKOFF_S = 2.0

T = TypeVar("T")


async def bounded_attempt(loop: asyncio.AbstractEventLoop, seconds: float,
                          terminate: Callable[[], object], attempt: Awaitable[T]) -> T:  # fmt: skip
    """A PostgreSQL commit attempt that ends within ``seconds``.

    PostgreSQL's command timeout bounds each statement, but one attempt is
    several (UPDATE, INSERTs, COMMIT, then a ROLLBACK after a timeout that
    waits out the timeout again): against a server that stopped answering,
    an attempt took twice GATEWAY_DATABASE_TIMEOUT_SECONDS. At the deadline
    ``terminate`` closes the connection under the attempt, which then fails
    at once, cleanup included (cancelling it would still wait for the
    ROLLBACK); its fate unknown, the caller re-reads the chain head.
    """
    deadline = loop.call_later(seconds, terminate)
    try:
        return await attempt
    finally:
        deadline.cancel()


def fail_waiters(batch: list[Pending], exc: BaseException) -> AuditUnavailable:
    """Answer the batch's waiting callers with the failure; returns the error they got."""
    error = AuditUnavailable(f"audit store cannot commit: {store_error(exc)}")
    for p in batch:
        if p.future is not None and not p.future.done():
            p.future.set_exception(error)
    return error


def fail_queued(queue: deque[Pending], error: AuditUnavailable) -> deque[Pending]:
    """Fail the waiting callers queued behind a failed attempt; returns the records kept.

    Nothing of theirs was written, and they would only wait for one more
    attempt against a store that just failed. Un-awaited records stay queued.
    """
    kept: deque[Pending] = deque()
    for p in queue:
        if p.future is None:
            kept.append(p)
        elif not p.future.done():
            p.future.set_exception(error)
    return kept


def refuse(p: Pending, exc: Exception) -> None:
    """A record JSON cannot carry: a bug in its producer, never retried."""
    if p.future is not None:
        if not p.future.done():
            p.future.set_exception(exc)
        return
    log.critical("audit record %s (%s) cannot be serialised and is not written: %s",
                 p.fields.get("id"), p.fields.get("kind"), exc)


class RetryQueue:
    """The un-awaited records of failed batches, and when to try them again."""

    __slots__ = ("at", "failures", "outage", "records")

    def __init__(self) -> None:
        self.records: deque[Pending] = deque()
        self.at = 0.0
        """Loop time before which the records are not tried again."""
        self.failures = 0
        """Failed batches in a row: the backoff grows with it."""
        self.outage = OutageLog()

    def back_off(self, now: float) -> None:
        """A batch failed: count it and push the next retry out."""
        self.failures += 1
        self.at = now + backoff(self.failures)

    def keep(self, batch: list[Pending], exc: BaseException, stopping: bool) -> None:
        """Keep the failed batch's un-awaited records for a retry (first in line)."""
        retry = [p for p in batch if p.future is None]
        self.outage.failed(len(batch), exc, 0 if stopping else len(retry))
        if stopping:
            if retry:
                log.critical("audit writer stopping with %d uncommitted outcome/event "
                             "records that could not be written", len(retry))
            return
        self.records.extendleft(reversed(retry))


def backoff(failures: int) -> float:
    """Seconds before retrying un-awaited records after ``failures`` failed batches in a row.

    The exponent is capped: an outage under load fails hundreds of batches a
    second, and ``2 ** 1024`` as a float raised OverflowError, which killed
    the writer task (every later request a 503 until a restart).
    """
    return min(0.05 * 2.0 ** min(failures - 1, 16), MAX_BACKOFF_S)
