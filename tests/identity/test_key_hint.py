"""No part of a key's secret is stored or shown: SPEC "only a hash of the secret
is stored". The displayed ``prefix`` was ``gk_<id>_`` plus the secret's first
four characters, in ``api_keys``, in the admin API's answers and in the
admin-action log; it is now the key id only, and a migration scrubs the
prefixes stored before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from gateway.db import migrate
from gateway.db.session import create_engine, session_factory
from gateway.identity.keys import create_api_key, key_snapshot, revoke_api_key
from gateway.identity.tables import AdminAction, ApiKey
from gateway.kyc.schemas import CustomerCreate
from gateway.kyc.service import create_customer
from gateway.settings import Settings
from tests.identity.conftest import ACTOR, NOW, Db, add_customer
from tests.ops.test_migrations import _downgrade_to, _revisions_oldest_first
from tests.support.postgres_server import PostgresServer, postgres_fixture


async def test_a_new_key_stores_and_shows_no_secret_material(db: Db) -> None:
    await add_customer(db, "c1")
    async with db.sessions() as session:
        row, clear = await create_api_key(session, "c1", ACTOR, NOW)
        await revoke_api_key(session, row.id, ACTOR, NOW)
        await session.commit()
    secret = clear.split("_", 2)[2]
    assert row.prefix == f"gk_{row.id}" and key_snapshot(row)["prefix"] == f"gk_{row.id}"
    assert clear.startswith(row.prefix + "_")  # still recognisably the key's start
    async with db.sessions() as session:
        actions = (await session.execute(select(AdminAction))).scalars().all()
    logged = [a.after for a in actions if a.target_type == "api_key"]
    assert logged and all(entry is not None and entry["prefix"] == row.prefix for entry in logged)
    assert all(secret[:4] not in str(entry) for entry in logged)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    yield from postgres_fixture()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database()
    return Settings(database_url=url, demo=True, policy_dir=tmp_path)


async def test_the_migration_scrubs_stored_prefixes(settings: Settings) -> None:
    engine = create_engine(settings)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    try:
        # Rows written by today's code, then the schema taken back to the first
        # revision (the ORM maps columns later revisions added: it cannot write
        # at that revision itself).
        await migrate.upgrade(engine)
        async with sessions() as session:
            customer = await create_customer(
                session, CustomerCreate(name="Acme Robotics Inc"), ACTOR, None, now
            )
            row, clear = await create_api_key(session, customer.id, ACTOR, now)
            await revoke_api_key(session, row.id, ACTOR, now)
            await session.commit()
            key_id, secret = row.id, clear.split("_", 2)[2]
        await _downgrade_to(engine, _revisions_oldest_first()[0])
        # What the code before this change wrote: four characters of the secret.
        old = f"gk_{key_id}_{secret[:4]}"
        async with sessions() as session:
            await session.execute(update(ApiKey.__table__).values(prefix=old))
            for action in (await session.execute(select(AdminAction))).scalars():
                if action.target_type == "api_key":
                    action.before = action.before and {**action.before, "prefix": old}
                    action.after = action.after and {**action.after, "prefix": old}
            await session.commit()
        await migrate.upgrade(engine)
        async with sessions() as session:
            stored = (await session.execute(select(ApiKey.prefix))).scalars().all()
            actions = (await session.execute(select(AdminAction))).scalars().all()
        assert stored == [f"gk_{key_id}"]
        logged = [a for a in actions if a.target_type == "api_key"]
        assert [a.action for a in logged] == ["key.create", "key.revoke"]
        for action in logged:
            for entry in (action.before, action.after):
                assert entry is None or entry["prefix"] == f"gk_{key_id}", entry
        assert logged[1].before is not None and logged[1].after is not None
        assert logged[1].after["revoked_at"] is not None  # the rest of the entry is kept
    finally:
        await engine.dispose()
