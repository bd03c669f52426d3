"""What ``gateway policy explain`` reads: ``GATEWAY_DATABASE_URL``, and quota use
from ``GATEWAY_REDIS_URL`` when set (read-only, both).

A missing SQLite file, an unreadable database or an unknown customer or key
is a usage error (exit 2), said in one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.policy.decision import QuotaPlan
from gateway.policy.explain_customer import CustomerRecord, load_customer
from gateway.policy.explain_key import KeyRecord, load_key
from gateway.policy.explain_usage import NOT_A_CUSTOMER, NOT_SEEN_MEMORY, read_usage, unread

T = TypeVar("T")


def usage_error(console: Console, message: str) -> typer.Exit:
    console.print(f"error: {message}", markup=False, style="red")
    return typer.Exit(2)


async def _read(load: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from gateway.db.session import create_engine, session_factory
    from gateway.settings import Settings

    engine = create_engine(Settings(demo=True))  # only the database URL is needed here
    try:
        async with session_factory(engine)() as session:
            return await load(session)
    finally:
        await engine.dispose()


def _run(console: Console, load: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from gateway.cli.policy_impact import _missing_sqlite_file

    missing = _missing_sqlite_file()
    if missing is not None:  # connecting would create it
        raise usage_error(console, f"no database at {missing} (GATEWAY_DATABASE_URL)")
    try:
        return asyncio.run(_read(load))
    except (SQLAlchemyError, OSError) as exc:
        first = str(exc).splitlines()[0]
        raise usage_error(
            console, f"cannot read customers in GATEWAY_DATABASE_URL ({first})"
        ) from None


def read_customer(console: Console, customer_id: str, at: datetime) -> CustomerRecord:
    # Keys are judged live at --at: one expired by then would not carry the request.
    record = _run(console, lambda session: load_customer(session, customer_id, at))
    if record is None:
        raise usage_error(console, f"no customer {customer_id} in GATEWAY_DATABASE_URL")
    return record


def read_key(console: Console, key_id: str) -> KeyRecord:
    record = _run(console, lambda session: load_key(session, key_id))
    if record is None:
        raise usage_error(console, f"no key {key_id} in GATEWAY_DATABASE_URL")
    return record


def read_quota_usage(
    customer_id: str | None, plan: QuotaPlan
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The customer's use of each limit, from the shared Redis when
    ``GATEWAY_REDIS_URL`` is set; otherwise said to be out of reach (the
    gateway's memory), never shown as zeros."""
    from gateway.settings import Settings

    if customer_id is None:
        return unread(NOT_A_CUSTOMER), []
    settings = Settings(demo=True)
    if not settings.redis_url:
        return unread(NOT_SEEN_MEMORY), []

    async def peek() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from gateway.quota.meter import build_meter

        meter = build_meter(settings)
        try:
            return await read_usage(meter, "redis", customer_id, plan, datetime.now(UTC))
        finally:
            await meter.aclose()

    return asyncio.run(peek())
