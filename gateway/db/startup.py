"""Schema readiness at start-up, run in a short-lived child process.

A serving process never imports Alembic (about 11 MB of resident memory per
worker, for code that runs once): ``gateway serve`` asks a child
``gateway db upgrade`` (SQLite, the embedded default) or ``gateway db check``
(PostgreSQL: migrations are an explicit deploy step, never N replicas
racing) and waits for it.
"""

from __future__ import annotations

import asyncio
import os
import sys

from gateway.db.errors import SchemaOutOfDate
from gateway.settings import Settings

SCHEMA_READY_ENV = "GATEWAY_SCHEMA_READY_FOR"
"""Set by ``gateway serve`` to the database URL it has just prepared, so its
workers do not repeat the step (an ASGI server started some other way still
gets it in the lifespan)."""


async def prepare_for_serving(settings: Settings) -> None:
    """Migrate SQLite to head, or require that any other database is at head."""
    if os.environ.get(SCHEMA_READY_ENV) == settings.database_url:
        return
    action = "upgrade" if settings.is_sqlite else "check"
    env = dict(os.environ)
    env["GATEWAY_DATABASE_URL"] = settings.database_url
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli.main",
        "db",
        action,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await child.communicate()
    if child.returncode != 0:
        raise SchemaOutOfDate(
            f"`gateway db {action}` failed (exit {child.returncode}): "
            + output.decode(errors="replace").strip()
        )
