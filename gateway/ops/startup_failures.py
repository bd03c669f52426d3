"""A worker that cannot start stops ``gateway serve --workers N`` with exit 3.

With one worker, uvicorn exits 3 when the app's factory or lifespan start-up
raises. With N workers the supervisor is a parent process that only sees its
children's exit codes, and what it does with them depends on the uvicorn
release: before 0.50 it restarts a worker that failed to start, forever;
since 0.50 it stops, but ``uvicorn.run`` then returns normally, so the
command exits 0 and a process manager reads a broken deploy as a clean stop.

So the workers tell the supervisor themselves, through a file it names in
``GATEWAY_WORKER_FAILURE_FILE``: a worker whose start-up raises appends its
error there (``report``) before uvicorn exits it. The supervisor watches the
file (``StartupWatch``), stops its workers with the same SIGTERM an operator
would send (the supervisor's one interface that is stable across uvicorn
releases: its classes changed shape in 0.50 and 0.51), and exits 3 with the
error. A worker that dies once it has started is not a start-up failure and is
replaced by uvicorn as before; its replacement failing to start is one.

Standard library only: this is imported by every serving process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from types import TracebackType

FAILURE_FILE_ENV = "GATEWAY_WORKER_FAILURE_FILE"
STARTUP_FAILURE_EXIT = 3
"""uvicorn's exit code for a server that failed to start: what ``gateway
serve`` exits with on one worker, and now on N as well."""

log = logging.getLogger("gateway.startup")


def report(exc: BaseException) -> None:
    """In a worker: record that start-up failed with ``exc`` (no-op outside ``--workers N``)."""
    path = os.environ.get(FAILURE_FILE_ENV)
    if not path:
        return
    line = json.dumps({"pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}"})
    try:
        # One append per report: two workers failing at once do not interleave lines.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError as err:
        # The traceback is in the log either way; only the exit code is at stake.
        log.error("could not tell the supervisor that start-up failed (%s): %s", path, err)


class StartupWatch:
    """In the supervisor: create the report file, and stop serving at the first report.

    Use around ``uvicorn.run``; afterwards ``failure`` is the first worker's
    error, or None when the workers stopped for any other reason (SIGTERM).
    """

    def __init__(self, poll_seconds: float = 0.2) -> None:
        fd, name = tempfile.mkstemp(prefix="gateway-worker-start-")
        os.close(fd)
        self.path = Path(name)
        self._poll = poll_seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="startup-watch", daemon=True)

    def __enter__(self) -> StartupWatch:
        # Workers are spawned with the supervisor's environment.
        os.environ[FAILURE_FILE_ENV] = str(self.path)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()
        os.environ.pop(FAILURE_FILE_ENV, None)

    @property
    def failure(self) -> str | None:
        try:
            first = self.path.read_text(encoding="utf-8").partition("\n")[0]
        except OSError:
            return None
        if not first:
            return None
        report_doc = json.loads(first)
        return f"worker {report_doc['pid']}: {report_doc['error']}"

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _watch(self) -> None:
        while not self._done.wait(self._poll):
            if self.path.stat().st_size > 0:
                # uvicorn's supervisor handles SIGTERM as a normal stop: it
                # terminates every worker and returns from uvicorn.run.
                os.kill(os.getpid(), signal.SIGTERM)
                return
