"""The configured database, for CLI commands that work on an existing one.

A mistyped ``GATEWAY_DATABASE_URL`` must neither create anything (SQLite
would create an empty file, and ``create_engine`` its parent directories) nor
end in a traceback with exit 1, which for ``gateway audit verify`` means "the
chain is broken". A database that is missing, unreachable or not the
gateway's (no tables) is a usage error: exit 2 with a message naming it.

Commands that create the database (``serve``, ``db upgrade``) do not use
this. The commands that may be an operator's first step on a fresh machine,
before the first ``serve`` (``tokens create``, ``customers add``), create a
missing SQLite file, but only in a directory that exists, and say so with its
path (``new_sqlite_file``), so a typo shows at once. The others
(``customers list|show|suspend``, ``keys create|revoke``) act on records that
must already exist, so for them a missing file is a usage error.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.messages import error, stderr
from gateway.settings import Settings

T = TypeVar("T")


def audit_settings() -> Settings:
    """The settings for commands that read the audit log: they never talk to the
    upstream, so its URL is not insisted on. A bad variable is exit 2."""
    from gateway.settings import SettingsError, load_settings

    overrides: dict[str, object] = {} if os.environ.get("GATEWAY_UPSTREAM_URL") else {"demo": True}
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        error(stderr(), str(exc))
        raise typer.Exit(2) from None


def run_on_existing_database(
    settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]
) -> T:
    """Run ``work`` on an engine for the configured database, which must exist."""
    from gateway.db.session import create_engine

    require_existing(settings)

    async def run() -> T:
        engine = create_engine(settings)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except DBAPIError as exc:
        _fail(settings, f"{exc.orig}: is it the gateway's database, migrated (`gateway db "
              "upgrade`) and reachable?")
    except (SQLAlchemyError, OSError) as exc:  # asyncpg reports refused connections as OSError
        _fail(settings, str(exc))


CREATE_HINT = "or create it with `gateway db upgrade`"


def require_existing(settings: Settings, hint: str = "") -> None:
    """Exit 2 if the configured SQLite file does not exist (other engines are asked on use)."""
    path = settings.sqlite_path()
    if path is not None and not path.is_file():
        more = f", {hint}" if hint else ""
        _fail(settings, f"{path} does not exist (nothing was created; check the path{more})")


def new_sqlite_file(settings: Settings) -> Path | None:
    """The SQLite file this command is about to create, or None if there is none to create.

    Exit 2 when its directory is missing: a whole missing directory is far
    more likely a mistyped path than a first start, and ``create_engine``
    would otherwise create every directory on the way.
    """
    path = settings.sqlite_path()
    if path is None or path.is_file():
        return None
    if not path.parent.is_dir():
        _fail(settings, f"directory {path.parent} does not exist (nothing was created; "
              f"check the path, {CREATE_HINT})")
    return path.resolve()


def _fail(settings: Settings, reason: str) -> NoReturn:
    error(stderr(), f"cannot use the database {_shown(settings.database_url)}: {reason}")
    raise typer.Exit(2)


def _shown(url: str) -> str:
    """The URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(GATEWAY_DATABASE_URL)"
