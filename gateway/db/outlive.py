"""Database writes that run to their end when their caller is cancelled.

The request path writes a few rows in the request's own task: the owners of
ids an answer relayed (``proxy.reference_owners``, ``proxy.response_owners``),
Message Batch reservations (``proxy.batch_state``). The gateway cancels that
task when the client hangs up (``proxy.forward``'s disconnect watch), and the
openai SDK hangs up as soon as it reads a stream's ``[DONE]``, which is
exactly when a stream's ids are bound. A transaction cancelled between its
INSERT and its COMMIT was abandoned: the binding was lost (its owner got 404
naming its own id) and, on SQLite, the pooled connection kept the write lock,
so every audit commit after it failed "database is locked" (503, fail closed,
for every customer).

``outlives_cancel`` runs such a write in a task of its own, shielded: a
cancelled caller stops waiting (its ``CancelledError`` goes on as before),
the write commits or rolls back, and its connection goes back to the pool
clean. The task is held here until it ends (asyncio keeps only weak
references to tasks), and an error nobody waits for any more is logged.

The lock no longer depends on this shield: a connection whose transaction a
cancellation cut short rolls back as it closes (``gateway.db.sqlite_connection``),
whatever wrote on it. The shield is what saves the binding itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger("gateway.db")

P = ParamSpec("P")
T = TypeVar("T")

_running: set[asyncio.Task[Any]] = set()


def _ended(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # Retrieved here so that asyncio does not report it "never retrieved";
        # a caller still waiting gets it through the shield as well.
        log.debug("a shielded database write failed: %s", task.exception())


async def to_the_end(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` in a task that a cancellation of the caller does not stop."""
    task = asyncio.ensure_future(work)
    _running.add(task)
    task.add_done_callback(_ended)
    return await asyncio.shield(task)


def outlives_cancel(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Awaitable[T]]:
    """Decorate an async method whose transaction must not be cut short."""

    @functools.wraps(method)
    async def shielded(*args: P.args, **kwargs: P.kwargs) -> T:
        return await to_the_end(method(*args, **kwargs))

    return shielded
