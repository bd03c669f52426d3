"""Import target for uvicorn (``gateway.asgi:app_from_env``, factory mode), so
that ``--workers N`` processes each build their own app from the environment."""

from __future__ import annotations

from typing import Any

from gateway.app import create_app
from gateway.ops import startup_failures
from gateway.settings import load_settings


def app_from_env() -> Any:
    try:
        return create_app(load_settings())
    except Exception as exc:
        # uvicorn logs it and exits this worker 3; under --workers N the
        # supervisor learns why only from this report (gateway.ops.startup_failures).
        startup_failures.report(exc)
        raise
