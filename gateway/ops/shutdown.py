"""Graceful shutdown: drain first, then let uvicorn stop.

On the first SIGTERM (or SIGINT) the process

1. sets ``services.draining``: ``/readyz`` answers 503, so the load balancer
   takes the replica out of rotation while it still serves everything sent;
2. after ``GATEWAY_SHUTDOWN_DRAIN_SECONDS`` hands over to uvicorn, which stops
   accepting, lets in-flight requests and streams finish for up to
   ``gateway serve --graceful-timeout`` seconds (cancelling what is left), then
   runs the lifespan shutdown, where the audit writer flushes every queued
   record and writes a final checkpoint.

The process then exits 0. A second signal during the drain skips the rest of
it; a further SIGINT makes uvicorn force the exit.

Signals belong to the process, so ``Drainer.install`` wraps the handler uvicorn
installed (``uvicorn.Server.handle_exit``) from inside the lifespan, in each
worker. It asks uvicorn to exit by setting ``server.should_exit`` instead of
calling ``handle_exit``, which would re-raise the signal after shutdown and
make the exit status "killed by SIGTERM" instead of 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from gateway.ops import metrics
from gateway.services import Services

log = logging.getLogger("gateway.shutdown")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class Drainer:
    def __init__(self, services: Services, drain_seconds: float) -> None:
        self.services = services
        self.drain_seconds = max(0.0, drain_seconds)
        self._previous: dict[int, Handler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handed_over = False

    def install(self) -> None:
        """Wrap the current SIGTERM/SIGINT handlers (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.services.draining:
            # A second signal: skip the rest of the drain; after the hand-over,
            # uvicorn's own handler decides (a second SIGINT forces the exit).
            if self._handed_over:
                self._call_previous(sig, frame)
            else:
                self._hand_over(sig, frame)
            return
        self.services.draining = True
        metrics.DRAINING.set(1)
        log.warning(
            "received %s: draining (readyz false) for %.1f s, then finishing in-flight requests",
            signal.Signals(sig).name, self.drain_seconds,
        )  # fmt: skip
        if self.drain_seconds <= 0 or self._loop is None:
            self._hand_over(sig, frame)
            return
        loop = self._loop
        # call_soon_threadsafe is safe from a signal handler; call_later is not.
        loop.call_soon_threadsafe(
            lambda: loop.call_later(self.drain_seconds, self._hand_over, sig, None)
        )

    def _hand_over(self, sig: int, frame: FrameType | None) -> None:
        if self._handed_over:
            return
        self._handed_over = True
        server = getattr(self._previous.get(sig), "__self__", None)
        if server is not None and hasattr(server, "should_exit"):
            log.warning("drain over: stopping accepting, finishing in-flight requests")
            server.should_exit = True
            return
        self._call_previous(sig, frame)

    def _call_previous(self, sig: int, frame: FrameType | None) -> None:
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, frame)
        elif previous == signal.SIG_DFL and sig == signal.SIGINT:
            raise KeyboardInterrupt
        elif previous == signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)
