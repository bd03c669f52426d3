"""Schema migrations: Alembic is the only way the schema changes.

``gateway db upgrade`` runs them explicitly (the production path on
PostgreSQL, once per deploy, not from N replicas at once). ``gateway serve``
runs them itself on SQLite, the embedded default; on PostgreSQL it only
checks that the database is at the head revision and refuses to start if not.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.errors import SchemaOutOfDate
from gateway.settings import Settings

__all__ = ["SchemaOutOfDate", "prepare_database", "upgrade"]

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


MIGRATION_LOCK_KEY = 0x6761746577617901
"""pg_advisory_xact_lock key taken by every `gateway db upgrade` ("gateway" + 1)."""


async def upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Deploys start migrations from several places at once (an init
            # container per pod): without a lock all but one died on a
            # duplicate catalog row. The lock is the transaction's, released
            # at its commit; the next upgrade then reads the new revision
            # (READ COMMITTED) and has nothing to do.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK_KEY})  # fmt: skip
        await conn.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def prepare_database(engine: AsyncEngine, settings: Settings) -> None:
    """Migrate SQLite to head; on other engines require that it already is."""
    if settings.is_sqlite:
        await upgrade(engine)
        return
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"database schema is at revision {current!r}, the gateway needs {head!r}: "
            "run `gateway db upgrade` once before starting the replicas"
        )
