"""Helpers shared by the ``gateway audit`` commands (``audit.py``, ``audit_upkeep.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.database import audit_settings as audit_settings  # re-exported
from gateway.cli.database import run_on_existing_database
from gateway.cli.messages import stderr
from gateway.settings import Settings

T = TypeVar("T")


def console() -> Console:
    return stderr()


def with_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    # Every audit command reads or extends an existing log: never create a database.
    return run_on_existing_database(settings, work)


def time_option(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 time with a zone, as the HTTP API takes it; exit 2 naming ``--name``."""
    from gateway.audit.filters import FilterError, parse_time

    if value is None:
        return None
    try:
        return parse_time(value, name)
    except FilterError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"'--{name}'") from None
