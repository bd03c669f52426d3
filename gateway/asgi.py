"""Import target for uvicorn (``gateway.asgi:app_from_env``, factory mode), so
that ``--workers N`` processes each build their own app from the environment."""

from __future__ import annotations

import logging
from typing import Any

from gateway.app import create_app
from gateway.ops import startup_failures
from gateway.settings import load_settings


def app_from_env() -> Any:
    # A library's warning would otherwise be printed raw on stderr, lines a
    # JSON log shipper cannot parse: route it through the JSON handler
    # (logger ``py.warnings``), in every worker.
    logging.captureWarnings(True)
    try:
        return create_app(load_settings())
    except Exception as exc:
        # uvicorn logs it and exits this worker 3; under --workers N the
        # supervisor learns why only from this report (gateway.ops.startup_failures).
        startup_failures.report(exc)
        raise
