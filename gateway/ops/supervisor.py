"""The ``--workers N`` supervisor: uvicorn's, with SIGHUP forwarded.

uvicorn's ``Multiprocess`` answers SIGHUP by replacing every worker one by
one; each old one drains (``/readyz`` 503 for the drain period) and a new one
claims a chain. The gateway's SIGHUP means "reload the policy"
(``gateway.ops.hangup``), which every worker does in place, so the supervisor
passes the signal on and restarts nothing. This is what ``uvicorn.run`` does
for ``workers > 1``, with that one method changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

from uvicorn import Config
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("gateway.shutdown")


class ForwardingMultiprocess(Multiprocess):
    def handle_hup(self) -> None:
        log.info("received SIGHUP: forwarding it to %d workers", len(self.processes))
        for process in self.processes:
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # died: keep_alive replaces it
                    os.kill(process.pid, signal.SIGHUP)


def run_workers(app: str, **options: Any) -> None:
    config = Config(app, **options)
    sock = config.bind_socket()
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: a second Ctrl+C
        ForwardingMultiprocess(config, sockets=[sock]).run()
