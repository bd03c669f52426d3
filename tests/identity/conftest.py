from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminActor
from gateway.identity.identifier import GatewayIdentifier
from gateway.kyc import service
from gateway.kyc.schemas import CustomerCreate
from tests.support.identity_app import make_db, make_settings

ACTOR = AdminActor(name="test", role="admin", token_id=None)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Db:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    engine, sessions = await make_db(make_settings(tmp_path))
    yield Db(engine, sessions)
    await engine.dispose()


@pytest.fixture
def mono() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
async def identifier(db: Db, mono: FakeMonotonic) -> AsyncIterator[GatewayIdentifier]:
    ident = GatewayIdentifier(db.sessions, cache_ttl_seconds=30.0, clock=mono)
    yield ident
    await ident.stop()


async def add_customer(db: Db, cid: str, **fields: object) -> None:
    data = CustomerCreate.model_validate({"id": cid, "name": f"Customer {cid}", **fields})
    async with db.sessions() as session:
        await service.create_customer(session, data, ACTOR, None, NOW)
        await session.commit()
