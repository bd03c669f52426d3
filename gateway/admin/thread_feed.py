"""Feed an async stream of records to CPU work in a worker thread, a few
batches ahead at most.

``POST /admin/v1/policy/impact`` replays the audit log inside a serving
process: read into a list first (as the CLI, a process of its own, may), a
week of a busy gateway's decisions would be held in the worker's memory at
once. Here the event loop reads the log (its sessions are bound to the loop)
and hands batches over a bounded queue to the thread that re-decides them;
the reader waits while the thread is behind, so memory is bounded by
``depth`` batches whatever the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

BATCH = 1000
DEPTH = 4
_POLL_SECONDS = 0.1


def _put(q: queue.Queue[list[T] | None], item: list[T] | None, stop: threading.Event) -> bool:
    """Put, waiting for room, unless the consumer has stopped (then False)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _drain(q: queue.Queue[list[T] | None]) -> Iterator[T]:
    while (batch := q.get()) is not None:
        yield from batch


async def feed_thread(
    records: AsyncIterable[T],
    work: Callable[[Iterable[T]], R],
    batch: int = BATCH,
    depth: int = DEPTH,
) -> R:
    """``work(records)`` in a worker thread, ``records`` read on the event loop."""
    q: queue.Queue[list[T] | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def consume() -> R:
        try:
            return work(_drain(q))
        finally:
            stop.set()  # whatever happened, the reader must not wait for room any more

    consumer = asyncio.ensure_future(asyncio.to_thread(consume))
    try:
        pending: list[T] = []
        async for record in records:
            pending.append(record)
            if len(pending) >= batch:
                if not await asyncio.to_thread(_put, q, pending, stop):
                    break  # the work ended early (it raised): its error is raised below
                pending = []
        else:
            if pending:
                await asyncio.to_thread(_put, q, pending, stop)
    except BaseException:
        # Reading failed (or the request was cancelled): end the stream so the
        # thread does not wait for a batch that will never come, and let it finish.
        await asyncio.to_thread(_put, q, None, stop)
        with contextlib.suppress(Exception):
            await consumer
        raise
    await asyncio.to_thread(_put, q, None, stop)
    return await consumer
