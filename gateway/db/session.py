"""Engine and session factory for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway.db.pg_url import split_dsn_options
from gateway.db.sqlite_connection import RollbackOnClose
from gateway.settings import Settings


def create_engine(settings: Settings, *, serving: bool = False) -> AsyncEngine:
    """One engine per process. SQLite runs in WAL mode with the configured
    ``synchronous`` level (FULL by default: a committed audit batch survives
    power loss, see README "Durability").

    On PostgreSQL every connection attempt is bounded by
    ``database_timeout_seconds``; with ``serving`` every statement is too, so
    an unresponsive server turns into 503s (fail closed) within that time.
    CLI maintenance (a retention prune's one large DELETE) is not bounded."""
    if settings.is_sqlite:
        path = settings.sqlite_path()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            settings.database_url,
            # factory: a connection closed mid-transaction (a cancelled write)
            # gives the write lock back at once (gateway.db.sqlite_connection).
            connect_args={"timeout": 30, "factory": RollbackOnClose},
        )
        synchronous = settings.sqlite_synchronous

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    timeout = settings.database_timeout_seconds
    url, dsn_options = split_dsn_options(settings.database_url)
    connect_args: dict[str, Any] = {"timeout": timeout}
    if dsn_options is not None:  # libpq's `sslmode` and friends (gateway.db.pg_url)
        connect_args["dsn"] = dsn_options
    if serving:
        connect_args["command_timeout"] = timeout
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_pre_ping=True,
        pool_timeout=timeout,
        connect_args=connect_args,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
