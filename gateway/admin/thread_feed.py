"""Feed an async stream of records to CPU work in a worker thread, a few
batches ahead at most.

``POST /admin/v1/policy/impact`` replays the audit log inside a serving
process: read into a list first (as the CLI, a process of its own, may), a
week of a busy gateway's decisions would be held in the worker's memory at
once. Here the event loop reads the log (its sessions are bound to the loop)
and hands batches over a bounded queue to the thread that re-decides them;
the reader waits while the thread is behind, so memory is bounded by
``depth`` batches whatever the window.

The work runs on a thread of its own, and the reader waits for room on the
event loop, never in the loop's default thread pool: a consumer that waits
for batches inside that pool, with the puts that would bring them queued
behind it, deadlocked the pool for good once it held as many replays as it
has threads (six on two CPUs), and with it every other ``to_thread`` of the
worker (policy reloads and validation, DNS lookups for the upstream).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BATCH = 1000
DEPTH = 4


def _wake(loop: asyncio.AbstractEventLoop, room: asyncio.Event) -> None:
    """Tell the reader (on ``loop``) that the queue has room or the work ended."""
    with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
        loop.call_soon_threadsafe(room.set)


class _Feed(Generic[T, R]):
    """The queue between the reader (event loop) and the work (its own thread)."""

    def __init__(self, work: Callable[[Iterable[T]], R], depth: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: queue.Queue[list[T] | None] = queue.Queue(maxsize=depth)
        self._room = asyncio.Event()
        self._stopped = threading.Event()
        self._work = work
        self.result: asyncio.Future[R] = self._loop.create_future()

    def start(self) -> None:
        threading.Thread(target=self._consume, name="gateway-thread-feed", daemon=True).start()

    def _drain(self) -> Iterator[T]:
        while (batch := self._queue.get()) is not None:
            _wake(self._loop, self._room)
            yield from batch

    def _consume(self) -> None:
        try:
            value = self._work(self._drain())
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            self._ended()
            self._hand_over(self._set_error, exc)
        else:
            self._ended()
            self._hand_over(self._set_result, value)

    def _ended(self) -> None:
        self._stopped.set()  # whatever happened, the reader must not wait for room any more
        _wake(self._loop, self._room)

    def _hand_over(self, settle: Callable[[Any], None], outcome: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            self._loop.call_soon_threadsafe(settle, outcome)

    def _set_result(self, value: R) -> None:
        if not self.result.done():
            self.result.set_result(value)

    def _set_error(self, error: BaseException) -> None:
        if not self.result.done():
            self.result.set_exception(error)

    async def put(self, item: list[T] | None) -> bool:
        """Put, waiting on the loop for room, unless the work has ended (then False)."""
        while not self._stopped.is_set():
            self._room.clear()  # before trying: a batch taken from here on wakes us
            try:
                self._queue.put_nowait(item)
                return True
            except queue.Full:
                await self._room.wait()
        return False


async def feed_thread(
    records: AsyncIterable[T],
    work: Callable[[Iterable[T]], R],
    batch: int = BATCH,
    depth: int = DEPTH,
) -> R:
    """``work(records)`` in a worker thread, ``records`` read on the event loop."""
    feed: _Feed[T, R] = _Feed(work, depth)
    feed.start()
    try:
        pending: list[T] = []
        async for record in records:
            pending.append(record)
            if len(pending) >= batch:
                if not await feed.put(pending):
                    break  # the work ended early (it raised): its error is raised below
                pending = []
        else:
            if pending:
                await feed.put(pending)
    except BaseException:
        # Reading failed (or the request was cancelled): end the stream so the
        # thread does not wait for a batch that will never come, and let it finish.
        await feed.put(None)
        with contextlib.suppress(Exception):
            await feed.result
        raise
    await feed.put(None)
    return await feed.result
