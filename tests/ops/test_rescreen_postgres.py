"""The start-up rescreen's selection (list content digest by LIKE, threshold
by float equality) on PostgreSQL: a record screened against the same list at
the same threshold is not selected again, one at another threshold is, and
batches page through every customer. A compliance decision committed while a
batch is in flight stands (the batch locks its rows FOR UPDATE and screens
again what changed since it read them)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.admin.auth import AdminActor
from gateway.kyc import service
from gateway.kyc.list_update import rescreen_if_list_changed
from gateway.kyc.rescreen import rescreen_in_batches
from gateway.kyc.schemas import CustomerCreate
from gateway.kyc.screening import screener_from_path
from tests.kyc.rescreen_race import (
    batch_during_clearance,
    clearance_during_batch,
    confirmation_during_batch,
    rename_at_one_clock_reading,
)
from tests.support.identity_app import make_db, make_settings
from tests.support.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 6, 1, tzinfo=UTC)
ACTOR = AdminActor(name="test", role="admin", token_id=None)


async def test_rescreen_selection_on_postgres(postgres: PostgresServer, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=postgres.create_database())
    engine, sessions = await make_db(settings)
    listed = tmp_path / "list.csv"
    listed.write_text("name,alt_names,type,source\nZoltrava Shipping,,Entity,SYN-EL\n")
    at_92 = screener_from_path(listed, 0.92)
    async with sessions() as session:
        for i, name in enumerate(["Zolotrava Shippers", "Jane Smith", "Teodor Marchetti"]):
            await service.create_customer(session, CustomerCreate(id=f"c{i}", name=name),
                                          ACTOR, at_92, NOW)  # fmt: skip
        await session.commit()
    assert await rescreen_if_list_changed(sessions, at_92, NOW) is None
    at_85 = screener_from_path(listed, 0.85)
    outcome = await rescreen_if_list_changed(sessions, at_85, NOW)
    assert outcome is not None and outcome.screened == 3
    assert [c.id for c in outcome.held] == ["c0"]
    assert await rescreen_if_list_changed(sessions, at_85, NOW) is None
    everyone = await rescreen_in_batches(sessions, at_85, ACTOR, NOW, batch=2)
    assert everyone.screened == 3 and everyone.held == []
    await engine.dispose()


async def test_a_clearance_made_during_a_batch_stands_on_postgres(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, database_url=postgres.create_database())
    engine, sessions = await make_db(settings)
    outcome, (status, reviewed) = await clearance_during_batch(sessions, tmp_path, monkeypatch)
    await engine.dispose()
    assert status == "clear" and reviewed == [True]
    assert outcome.screened == 1 and outcome.held == []


async def test_a_confirmed_match_made_during_a_batch_stands_on_postgres(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, database_url=postgres.create_database())
    engine, sessions = await make_db(settings)
    outcome, (status, reviewed) = await confirmation_during_batch(
        sessions, tmp_path, monkeypatch
    )
    await engine.dispose()
    assert status == "confirmed_match" and reviewed == [False]
    assert outcome.screened == 1 and outcome.held == []


async def test_a_hit_found_during_a_clearance_holds_the_customer_on_postgres(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, database_url=postgres.create_database())
    engine, sessions = await make_db(settings)
    status, reviewed = await batch_during_clearance(sessions, tmp_path, monkeypatch)
    await engine.dispose()
    assert reviewed == {"Zoltrava Shipping": True, "Brenholt Ventures": False}
    assert status == "potential_match"


async def test_a_rename_at_the_same_clock_reading_is_screened_again_on_postgres(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, database_url=postgres.create_database())
    engine, sessions = await make_db(settings)
    outcome, status = await rename_at_one_clock_reading(sessions, tmp_path, monkeypatch)
    await engine.dispose()
    assert status == "potential_match"
    assert [c.id for c in outcome.held] == ["cus_zoltrava"]
