"""``feed_thread``: the impact route's replay reads the log a few batches ahead
of the thread that re-decides it, never the whole log into memory."""

from __future__ import annotations

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
