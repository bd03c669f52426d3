"""The serving process: uvicorn with the gateway app, and nothing of the CLI.

``gateway serve`` checks the settings, prepares the database and prints the
demo keys, then replaces itself (``exec``, same PID, so signals and process
supervisors see no difference) with ``python -m gateway.worker``. A worker
therefore never carries the command line's imports (typer, rich and the
admin command modules: 4-8 MB of resident memory per worker), and with
``--workers N`` uvicorn's spawned children re-import this small module as
their ``__main__``, not the whole CLI.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

if __name__ in ("__main__", "__mp_main__"):  # the serving process, or a spawned worker
    # FastAPI probes every route parameter for pydantic v1 models with
    # ``from pydantic import v1`` inside ``try/except ImportError``. The gateway
    # has no v1 models, and loading ``pydantic.v1`` for that probe alone keeps
    # ~1.4 MB resident per worker; a None entry makes the import fail, so the
    # probe answers "not a v1 model" without loading it. Only here, so the CLI
    # and the test process are untouched.
    sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]
    # SIGHUP means "reload the policy" once the lifespan handles it
    # (gateway.ops.hangup); until then it must not kill a starting worker.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

import uvicorn

from gateway.ops.logging import log_config
from gateway.ops.startup_failures import STARTUP_FAILURE_EXIT, StartupWatch
from gateway.ops.supervisor import run_workers
from gateway.settings import load_settings

SERVER_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    # No WebSocket routes: "none" keeps uvicorn from importing the websockets
    # library into every worker (~0.9 MB resident).
    "ws": "none",
}


def exec_worker(host: str, port: int, workers: int, graceful_timeout: int) -> None:
    """Replace the current process with the serving process (never returns)."""
    # exec discards unflushed buffers: the demo keys printed just before must reach the pipe.
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [
        sys.executable, "-m", "gateway.worker",
        "--host", host, "--port", str(port), "--workers", str(workers),
        "--graceful-timeout", str(graceful_timeout),
    ]
    os.execv(sys.executable, argv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gateway.worker", description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--graceful-timeout", type=int, required=True)
    args = parser.parse_args(argv)
    # `gateway serve` has validated these settings already; the app reloads them per worker.
    settings = load_settings()
    options: dict[str, Any] = {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        **SERVER_OPTIONS,
        "log_level": settings.log_level,
        "log_config": log_config(settings),
        "access_log": False,
        "timeout_graceful_shutdown": args.graceful_timeout,
        "proxy_headers": False,
    }
    if args.workers == 1:
        # uvicorn itself exits 3 when the one worker fails to start.
        uvicorn.run("gateway.asgi:app_from_env", **options)
        return
    watch = StartupWatch()
    try:
        with watch:
            run_workers("gateway.asgi:app_from_env", **options)
        failure = watch.failure
    finally:
        watch.remove()
    if failure is not None:
        # Same exit code as one worker: a deploy whose workers cannot start is a failure.
        logging.getLogger("gateway").error(
            "a worker failed to start, so all workers were stopped: %s", failure
        )
        sys.exit(STARTUP_FAILURE_EXIT)


if __name__ == "__main__":
    main()
