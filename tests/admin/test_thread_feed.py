"""``feed_thread``: the impact route's replay reads the log a few batches ahead
of the thread that re-decides it, never the whole log into memory."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterable

import pytest

from gateway.admin.thread_feed import feed_thread


async def test_every_record_arrives_in_order_with_bounded_read_ahead() -> None:
    produced = 0
    consumed = 0
    ahead: list[int] = []
    lock = threading.Lock()

    async def records() -> AsyncIterator[int]:
        nonlocal produced
        for i in range(10_000):
            with lock:
                produced += 1
                ahead.append(produced - consumed)
            yield i

    def work(items: Iterable[int]) -> list[int]:
        nonlocal consumed
        out = []
        for item in items:
            with lock:
                consumed += 1
            out.append(item)
        return out

    assert await feed_thread(records(), work, batch=100, depth=2) == list(range(10_000))
    # At most the queue's batches, one being filled and one being read.
    assert max(ahead) <= 100 * (2 + 2), max(ahead)


async def test_an_error_in_the_work_is_raised_and_the_reader_stops() -> None:
    read = 0

    async def records() -> AsyncIterator[int]:
        nonlocal read
        for i in range(1_000_000):
            read += 1
            yield i

    def work(items: Iterable[int]) -> int:
        for item in items:
            if item == 250:
                raise ValueError("bad record")
        return 0

    with pytest.raises(ValueError, match="bad record"):
        await feed_thread(records(), work, batch=10, depth=2)
    assert read < 1_000, read


async def test_an_error_reading_the_log_is_raised_and_the_thread_ends() -> None:
    async def records() -> AsyncIterator[int]:
        yield 1
        raise OSError("database gone")

    finished = threading.Event()

    def work(items: Iterable[int]) -> None:
        for _ in items:
            pass
        finished.set()

    with pytest.raises(OSError, match="database gone"):
        await feed_thread(records(), work, batch=10)
    assert finished.is_set()  # the thread saw the end of the stream and returned


# As many impact replays at once as the event loop's default thread pool has
# threads (asyncio's default: min(32, CPUs + 4), what uvicorn's loop uses).
# Each replay's consumer waited for batches in a pool thread while the puts
# that would hand them over queued behind it in the same pool: with every
# thread a waiting consumer, nothing ever moved again, and the pool every
# other ``to_thread`` of the worker needs (policy reloads, validate, DNS
# lookups) was gone for good. Run in a child process: a deadlock would keep
# pytest itself from exiting.
_CONCURRENT_FEEDS = """
import asyncio, os
from gateway.admin.thread_feed import feed_thread

POOL = min(32, (os.cpu_count() or 1) + 4)

async def records():
    await asyncio.sleep(0.05)  # a database read: every consumer is started first
    for i in range(10):
        yield i

async def main():
    feeds = (feed_thread(records(), list, batch=3) for _ in range(POOL))
    results = await asyncio.wait_for(asyncio.gather(*feeds), 10)
    assert results == [list(range(10))] * POOL, results
    assert await asyncio.wait_for(asyncio.to_thread(lambda: 7), 10) == 7
    print("replayed", POOL)

asyncio.run(main())
"""


def test_concurrent_replays_never_take_the_whole_thread_pool() -> None:
    try:
        done = subprocess.run([sys.executable, "-c", _CONCURRENT_FEEDS], capture_output=True,
                              text=True, timeout=30, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("concurrent feed_thread calls deadlocked the default thread pool")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("replayed"), done.stdout
