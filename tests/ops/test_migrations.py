"""Alembic is the only way the schema changes: migrations produce exactly the
models' schema on SQLite and PostgreSQL, and upgrading keeps existing data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.auth import AdminActor, create_admin_token
from gateway.audit.signing import load_signer
from gateway.audit.tables import audit_records
from gateway.audit.writer import AuditWriter
from gateway.db import migrate
from gateway.db.models import metadata
from gateway.db.session import create_engine, session_factory
from gateway.identity import secrets as creds
from gateway.identity.keys import KEY_KIND
from gateway.identity.tables import ApiKey
from gateway.kyc.schemas import CustomerCreate
from gateway.kyc.tables import Customer
from gateway.settings import Settings
from tests.audit.conftest import make_record
from tests.support.postgres_server import PostgresServer

ACTOR = AdminActor(name="test", role="admin", token_id=None)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def settings(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Settings]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database()
    yield Settings(
        database_url=url, demo=True, node_id="mig-test",
        audit_signing_key=None, policy_dir=tmp_path,
    )  # fmt: skip


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


def _revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def _upgrade_to(engine: AsyncEngine, revision: str) -> None:
    await _migrate_to(engine, revision, "upgrade")


async def _downgrade_to(engine: AsyncEngine, revision: str) -> None:
    await _migrate_to(engine, revision, "downgrade")


async def _migrate_to(engine: AsyncEngine, revision: str, direction: str) -> None:
    from alembic import command

    def run(connection: Connection) -> None:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def _seed(engine: AsyncEngine, settings: Settings) -> str:
    """Rows in every kind of table, written by the gateway's own code paths."""
    now = datetime.now(UTC)
    sessions = session_factory(engine)
    # The customer row as the first revision's code wrote it (as the key row
    # below): the ORM would select and insert columns later revisions add
    # (the screening hits).
    data = CustomerCreate(
        name="Acme Robotics Inc", kind="organization", residence="US",
        incorporated_in="US", kyc_level="kyb_verified", tier="enterprise",
    )  # fmt: skip
    customer_id = "cus_migration_test"
    first_revision_customer = {
        **data.model_dump(exclude={"id", "ownership"}), "id": customer_id,
        "created_at": now, "updated_at": now,
    }  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(Customer.__table__.insert().values(**first_revision_customer))
    async with sessions() as session:
        await create_admin_token(session, "auditor", "migration-test", now)
        await session.commit()
    # The key row as the first revision's code wrote it: the ORM inserts every
    # column it maps (NULL for the unset ones), and columns added by later
    # revisions (the key scopes) do not exist yet at this revision.
    minted = creds.mint(KEY_KIND)
    first_revision_key = {
        "id": minted.id, "customer_id": customer_id, "secret_salt": minted.salt,
        "secret_hash": minted.hash, "prefix": minted.prefix, "name": "migration-test",
        "created_at": now,
    }  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(ApiKey.__table__.insert().values(**first_revision_key))
    writer = AuditWriter(engine, settings, load_signer(settings))
    await writer.start()
    for i in range(5):
        await writer.record(make_record(i, customer_id=customer_id))
    await writer.stop()
    return customer_id


async def test_migrations_match_models_and_keep_data(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        revisions = _revisions_oldest_first()
        assert revisions, "no migrations found"
        # Data written at the first revision must survive every later upgrade.
        await _upgrade_to(engine, revisions[0])
        customer_id = await _seed(engine, settings)
        for revision in revisions[1:]:
            await _upgrade_to(engine, revision)
        await migrate.upgrade(engine)  # head again: a no-op on a migrated database
        assert await migrate.current_revision(engine) == migrate.head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            count = select(func.count()).select_from(audit_records)
            assert (await conn.execute(count)).scalar() >= 5
            customers = (await conn.execute(select(Customer.id))).scalars().all()
            keys = (await conn.execute(select(ApiKey.customer_id))).scalars().all()
        assert customers == [customer_id]
        assert keys == [customer_id]
    finally:
        await engine.dispose()


async def test_a_table_missing_from_migrations_shows_in_the_diff(settings: Settings) -> None:
    """The comparison can fail: a model the migrations do not create is reported."""
    from sqlalchemy import Column, Integer, Table

    engine = create_engine(settings)
    extra = Table("ops_probe_not_migrated", metadata, Column("id", Integer, primary_key=True))
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
        assert [d[0] for d in diff] == ["add_table"]
    finally:
        metadata.remove(extra)
        await engine.dispose()


@pytest.mark.postgres
def test_concurrent_db_upgrades_on_postgres_all_succeed(postgres: PostgresServer) -> None:
    """Deploys run migrations from several places at once (an init container
    per replica pod, two pipelines): on an empty database all but one failed
    with `duplicate key value violates unique constraint
    "pg_type_typname_nsp_index"`. An advisory lock now serialises them; the
    later ones find the schema at head and do nothing."""
    import os
    import subprocess
    import sys

    url = postgres.create_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = url
    command = [sys.executable, "-m", "gateway.cli.main", "db", "upgrade"]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
        for _ in range(3)
    ]
    outputs = [(p.wait(timeout=120), p.stdout.read() if p.stdout else "") for p in procs]
    assert [code for code, _ in outputs] == [0, 0, 0], outputs
    head = migrate.head_revision()
    assert all(f"database at revision {head}" in out for _, out in outputs), outputs


async def test_flat_owners_stored_before_chains_read_as_before(settings: Settings) -> None:
    """Rows written before ``b4c8e2f1a6d9`` (no name, no owners) are flat
    owners after it, and a downgrade drops the chain columns cleanly."""
    from gateway.identity.ownership import Ownership
    from gateway.identity.store import load_customer
    from gateway.kyc.service import to_out
    from gateway.kyc.tables import CustomerOwnership

    engine = create_engine(settings)
    try:
        await _upgrade_to(engine, "b4c2e8f1a3d7")
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await conn.execute(Customer.__table__.insert().values(
                id="flat1", name="Harbor Ltd", kind="organization", citizenships=[],
                kyc_level="kyb_verified", tier="enterprise", attributes=[],
                sanctions_status="clear", status="active", created_at=now, updated_at=now,
            ))  # fmt: skip
            columns = CustomerOwnership.__table__.c
            await conn.execute(CustomerOwnership.__table__.insert().values(
                {columns.customer_id: "flat1", columns.country: "CN", columns.percent: 60.0}
            ))  # fmt: skip
        await migrate.upgrade(engine)
        async with session_factory(engine)() as session:
            p = await load_customer(session, "flat1")
            assert p is not None and p.ownership == (Ownership("CN", 60.0),)
            assert p.controlled_by({"CN"}, 50.0)
            out = to_out(await session.get_one(Customer, "flat1"))
            assert out.model_dump(mode="json")["ownership"] == [{"country": "CN", "percent": 60.0}]
        await _downgrade_to(engine, "b4c2e8f1a3d7")
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def test_a_review_made_before_hits_were_kept_still_clears_its_hit(
    settings: Settings, tmp_path: Path
) -> None:
    """Before ``c7d3a1f5b9e2`` a review's clearance was read off the stored
    best match of a ``clear`` record. Upgrading keeps it (the screened name is
    unknown): a rescreen does not hold that customer again for that listed
    name, while a stored score below the threshold (no hit, so no review)
    covers nothing and a clearance of an un-upgraded record records its best
    match."""
    from gateway.kyc.rescreen import rescreen_customers
    from gateway.kyc.reviews import reviews_of
    from gateway.kyc.schemas import CustomerPatch
    from gateway.kyc.screening import screener_from_path
    from gateway.kyc.service import update_customer

    listed = tmp_path / "list.csv"
    listed.write_text("name,alt_names,type,source\nZoltrava Shipping,,Entity,SYN\n"
                      "Brenholt Ventures,,Entity,SYN\nQarsun Dynamics,,Entity,SYN\n")  # fmt: skip
    engine = create_engine(settings)
    try:
        await _upgrade_to(engine, "c7d1e5a9f2b3")
        now = datetime.now(UTC)
        rows = [("cleared", "Zoltrava Shipping Co", "clear", "Zoltrava Shipping", 0.97),
                ("below", "Brenholt Venturas", "clear", "Brenholt Ventures", 0.5),
                ("pending", "Qarsun Dynamics", "potential_match", "Qarsun Dynamics", 1.0),
                ]  # fmt: skip
        async with engine.begin() as conn:
            for cid, name, status, best, score in rows:
                await conn.execute(Customer.__table__.insert().values(
                    id=cid, name=name, kind="organization", citizenships=[],
                    kyc_level="kyb_verified", tier="enterprise", attributes=[],
                    sanctions_status=status, screening_best_match=best, screening_score=score,
                    status="active", created_at=now, updated_at=now,
                ))  # fmt: skip
        await migrate.upgrade(engine)
        sessions = session_factory(engine)
        async with sessions() as session:
            migrated = await reviews_of(session, "cleared")
            assert [(r.screened_name, r.listed_name, r.score, r.cleared_by) for r in migrated] == [
                (None, "Zoltrava Shipping", 0.97, "migration")
            ]
            assert await reviews_of(session, "pending") == []
            # The pending one is cleared before any rescreen: its best match is what it saw.
            patch = CustomerPatch(sanctions_status="clear")
            await update_customer(session, "pending", patch, ACTOR, None, now)
            await session.commit()
        async with sessions() as session:
            screener = screener_from_path(listed, 0.9)
            outcome = await rescreen_customers(session, screener, ACTOR, now)
            await session.commit()
        assert [c.id for c in outcome.held] == ["below"]
        async with sessions() as session:
            cleared = to_out_of(await session.get_one(Customer, "cleared"))
        assert cleared["sanctions_status"] == "clear"
        assert cleared["screening"]["hits"] == [
            {"screened_name": "Zoltrava Shipping Co", "listed_name": "Zoltrava Shipping",
             "score": 1.0, "source": "SYN", "reviewed": True}
        ]  # fmt: skip
        await _downgrade_to(engine, "c7d1e5a9f2b3")
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def to_out_of(c: Customer) -> dict[str, Any]:
    from gateway.kyc.service import to_out

    return to_out(c).model_dump(mode="json")


async def test_a_review_made_before_owners_were_screened_does_not_clear_an_owner(
    settings: Settings, tmp_path: Path
) -> None:
    """A review made before ``c7d3a1f5b9e2`` cleared a hit on the customer's own
    name: owners' names were not screened then. An owning entity named as the
    listed party (added later) is a lead nobody looked at, and holds the customer."""
    from gateway.kyc.schemas import CustomerPatch, OwnershipShare
    from gateway.kyc.screening import screener_from_path
    from gateway.kyc.service import update_customer

    listed = tmp_path / "list.csv"
    listed.write_text("name,alt_names,type,source\nZoltrava Shipping,,Entity,SYN\n")
    engine = create_engine(settings)
    try:
        await _upgrade_to(engine, "c7d1e5a9f2b3")
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await conn.execute(Customer.__table__.insert().values(
                id="cleared", name="Zoltrava Shipping Co", kind="organization",
                citizenships=[], kyc_level="kyb_verified", tier="enterprise", attributes=[],
                sanctions_status="clear", screening_best_match="Zoltrava Shipping",
                screening_score=0.97, status="active", created_at=now, updated_at=now,
            ))  # fmt: skip
        await migrate.upgrade(engine)
        sessions = session_factory(engine)
        screener = screener_from_path(listed, 0.9)
        async with sessions() as session:
            owner = OwnershipShare(country="PA", percent=60, name="Zoltrava Shipping")
            patch = CustomerPatch(ownership=[owner])
            await update_customer(session, "cleared", patch, ACTOR, screener, now)
            await session.commit()
        async with sessions() as session:
            held = to_out_of(await session.get_one(Customer, "cleared"))
        assert held["sanctions_status"] == "potential_match", held["screening"]
    finally:
        await engine.dispose()
