"""The body-read bound (``gateway.proxy.body_deadline``) around ``read_body``.

The end-to-end behaviour (408 to a dripping client) is in
tests/e2e/test_body_timeout.py; this checks what a process cannot show: the
bound never swallows a cancellation that is not its own, and never cuts off
a body early.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.proxy.asgi_io import Message, read_body
from gateway.proxy.body_deadline import BodyDeadlines
from gateway.proxy.errors import ProxyError

SCOPE = {"headers": [(b"content-length", b"10")]}


async def _never() -> Message:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def _read(deadlines: BodyDeadlines) -> bytes:
    task = asyncio.current_task()
    assert task is not None
    return await read_body(SCOPE, _never, 1000, deadlines, task)


async def test_a_stalled_body_is_a_408_after_the_bound_and_not_before() -> None:
    deadlines = BodyDeadlines(0.2)
    started = time.monotonic()
    with pytest.raises(ProxyError) as refused:
        await _read(deadlines)
    took = time.monotonic() - started
    assert refused.value.status == 408 and refused.value.headers == {"connection": "close"}
    assert 0.2 <= took < 0.2 + 0.05 + 0.15, took  # at most one tick (0.05 s) late, plus slack
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_another_cancellation_goes_through() -> None:
    deadlines = BodyDeadlines(0.2)
    reader = asyncio.create_task(_read(deadlines))
    await asyncio.sleep(0.05)
    reader.cancel()  # shutdown, say: not the bound's to turn into a 408
    with pytest.raises(asyncio.CancelledError):
        await reader
    # Cancelled by both before the reader runs again: still a cancellation.
    reader = asyncio.create_task(_read(deadlines))
    await asyncio.sleep(0.05)
    deadlines._ticks += 100  # the bound's time has come, now
    deadlines._sweep()
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader


async def test_bodies_in_time_are_read_and_leave_nothing_behind() -> None:
    deadlines = BodyDeadlines(0.2)
    parts = [{"type": "http.request", "body": b"12345", "more_body": True},
             {"type": "http.request", "body": b"67890", "more_body": False}]  # fmt: skip

    async def receive() -> Message:
        await asyncio.sleep(0.02)
        return parts.pop(0)

    task = asyncio.current_task()
    assert task is not None
    assert await read_body(SCOPE, receive, 1000, deadlines, task) == b"1234567890"
    await asyncio.sleep(0.5)  # past the bound: nothing fires at a finished read
    assert not deadlines._reading and not deadlines._expired
    assert task.cancelling() == 0
