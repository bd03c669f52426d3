"""The shared background-task helper: stop ends the task, a failing step does not end the loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.ops.background import BackgroundTask, cancel_and_wait, every

log = logging.getLogger("test.background")


async def test_stop_cancels_and_awaits_the_task() -> None:
    ended = asyncio.Event()

    async def run() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()

    task = BackgroundTask("sleeper")
    task.start(run)
    await asyncio.sleep(0)
    assert task.running
    await task.stop()
    assert ended.is_set() and not task.running
    await task.stop()  # twice is harmless


async def test_a_failing_step_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("one bad step")

    task = BackgroundTask("loop")
    task.start(lambda: every(0.001, step, log, "the test step", first_at_once=True))
    for _ in range(200):
        if calls >= 3:
            break
        await asyncio.sleep(0.005)
    await task.stop()
    assert calls >= 3
    assert "the test step failed" in caplog.text


async def test_the_stopper_being_cancelled_is_not_swallowed() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # unwinds slowly
            raise

    inner = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.sleep(0.01)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
