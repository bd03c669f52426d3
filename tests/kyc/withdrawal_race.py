"""``gateway customers withdraw-clearance`` (the real CLI, its own process
state and event loop, in a thread) run while a rescreen batch is in flight,
between the batch reading its customers and writing their screenings
(shared by the SQLite tests and the PostgreSQL ones). The database is
brought to head by the migrations, as the CLI requires."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from gateway.cli.main import app as gateway_cli
from gateway.db import migrate
from gateway.db.session import create_engine, session_factory
from gateway.kyc.list_update import LIST_UPDATE_ACTOR
from gateway.kyc.rescreen import RescreenOutcome, rescreen_in_batches
from gateway.kyc.screening import screener_from_path
from tests.kyc.rescreen_race import (
    BRENHOLT,
    CUSTOMER,
    HEADER,
    NOW,
    ZOLTRAVA,
    Sessions,
    between_read_and_write,
    clear_customer,
    lists,
    set_status,
    stored,
)
from tests.support.identity_app import make_settings


async def migrated(tmp_path: Path, database_url: str) -> tuple[AsyncEngine, Sessions]:
    engine = create_engine(make_settings(tmp_path, database_url=database_url))
    await migrate.upgrade(engine)
    return engine, session_factory(engine)


async def withdrawal_during_batch(
    sessions: Sessions, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RescreenOutcome, tuple[str, list[bool]]]:
    """A customer held by the updated list and cleared by an officer (its one
    hit reviewed). A rescreen of a list naming it a second time reads it with
    that review in force (one hit covered, one new: it would hold it), and
    the CLI withdraws the clearance before the batch writes. The batch's
    outcome and the customer's status and hits (reviewed or not) after both."""
    old, new = lists(tmp_path)
    await clear_customer(sessions, old)
    first = await rescreen_in_batches(sessions, new, LIST_UPDATE_ACTOR, NOW)
    assert [c.id for c in first.held] == [CUSTOMER]
    await set_status(sessions, "clear", NOW + timedelta(minutes=5))
    assert await stored(sessions) == ("clear", [True])
    newer_path = tmp_path / "v3.csv"
    newer_path.write_text(HEADER + BRENHOLT + ZOLTRAVA + "Zoltrava Shipping Co,,Entity,SYN-EL\n")
    newer = screener_from_path(newer_path, 0.9)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)

    async def withdrawal() -> None:
        command = ["customers", "withdraw-clearance", CUSTOMER, "--reason", "new evidence"]
        done = await asyncio.to_thread(CliRunner().invoke, gateway_cli, command)
        assert done.exit_code == 0, done.output

    between_read_and_write(monkeypatch, withdrawal)
    outcome = await rescreen_in_batches(sessions, newer, LIST_UPDATE_ACTOR,
                                        NOW + timedelta(minutes=10))  # fmt: skip
    return outcome, await stored(sessions)
