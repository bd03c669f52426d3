"""SIGHUP: reload the policy directory, as daemons do on ``systemctl reload``.

SIGHUP's default action is to terminate the process. Operators send it out of
habit (``kill -HUP``, ``ExecReload=``, a closed terminal's hang-up), and a
gateway that did not handle it died at once: no drain, no final audit
checkpoint, in-flight streams cut. Each serving process therefore ignores
SIGHUP from its first line (``gateway.worker``) and, once its lifespan has
the policy holder, turns it into the same reload the file watch does
(validated; a bundle that fails is refused whole and logged). Under
``--workers N`` the supervisor forwards the signal to every worker
(``gateway.ops.supervisor``) instead of uvicorn's default of replacing them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

from gateway.policy.holder import PolicyHolder

log = logging.getLogger("gateway.policy")


class HangupReload:
    def __init__(self, policy: PolicyHolder) -> None:
        self.policy = policy
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def install(self) -> None:
        """Handle SIGHUP in this process's loop (main thread only: signal rules)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGHUP, self._on_signal)

    def uninstall(self) -> None:
        if self._loop is None:
            return
        self._loop.remove_signal_handler(signal.SIGHUP)  # leaves SIG_DFL behind
        # Still ignored while the process finishes its shutdown (audit flush).
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self._loop = None

    def _on_signal(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload(self) -> None:
        log.warning("received SIGHUP: reloading policy directory %s", self.policy.policy_dir)
        try:
            result = await self.policy.reload()
        except Exception:  # the running bundle stays; say so loudly
            log.exception("policy reload on SIGHUP failed; the running bundle stays")
            return
        if not result.ok:
            log.error("policy reload on SIGHUP refused (%d errors); %s stays in force",
                      len(result.errors), result.version)  # fmt: skip
        elif not result.changed:
            log.info("policy reload on SIGHUP: %s unchanged", result.version)
