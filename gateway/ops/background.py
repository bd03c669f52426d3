"""The background tasks a component owns: start one by name, stop it, run a step periodically.

Several components (the quota reset watch, the key last-used tracker, the
change feed, the OIDC key refresh, the cluster bus) each keep one task of
their own. Stopping one is always the same: cancel it and wait until it has
unwound, so nothing of it still runs when ``stop()`` returns; its
``CancelledError`` is the expected end, not an error. A stopper that is
itself being cancelled meanwhile is not swallowed: that cancellation is
raised on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


class BackgroundTask:
    """One named task: ``start`` runs it (once), ``stop`` cancels and awaits it."""

    __slots__ = ("_task", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``run()`` unless started already (the coroutine is made only then)."""
        if self._task is None:
            self._task = asyncio.create_task(run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end; its own cancellation is swallowed."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the caller is being cancelled too: that is not ours to swallow


async def every(
    interval_s: float,
    step: Callable[[], Awaitable[object]],
    log: logging.Logger,
    what: str,
    *,
    first_at_once: bool = False,
) -> None:
    """Run ``step`` every ``interval_s`` seconds until cancelled.

    A step that raises is logged whole and the loop goes on: a background
    loop that died silently would leave its job undone for the life of the
    process. ``first_at_once`` runs the first step before the first sleep.
    """
    if not first_at_once:
        await asyncio.sleep(interval_s)
    while True:
        try:
            await step()
        except Exception:  # a bug in one step: logged whole, the next step tries again
            log.exception("%s failed; trying again in %.1f s", what, interval_s)
        await asyncio.sleep(interval_s)
