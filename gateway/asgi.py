"""Import target for uvicorn (``gateway.asgi:app_from_env``, factory mode), so
that ``--workers N`` processes each build their own app from the environment."""

from __future__ import annotations

from typing import Any

from gateway.app import create_app
from gateway.settings import load_settings


def app_from_env() -> Any:
    return create_app(load_settings())
