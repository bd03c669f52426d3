"""Fixtures for the audit log: a real SQLite file per test, schema from metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import gateway.db.models  # noqa: F401  (every table on Base.metadata)
from gateway.audit.ids import new_id
from gateway.audit.record import DecisionRecord
from gateway.audit.signing import Signer, load_signer
from gateway.audit.writer import AuditWriter
from gateway.db.base import Base
from gateway.db.session import create_engine, session_factory
from gateway.settings import Settings


def make_settings(db_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{db_path}",
        "upstream_url": "http://127.0.0.1:9",
        "node_id": "test-node",
        "audit_checkpoint_every": 10,
        "audit_checkpoint_seconds": 3600.0,
    }
    values.update(overrides)
    return Settings(**values)


def make_record(i: int = 0, **overrides: Any) -> DecisionRecord:
    values: dict[str, Any] = {
        "id": new_id(),
        "ts": datetime.now(UTC),
        "decision": "allow" if i % 3 else "deny",
        "status": 200 if i % 3 else 403,
        "endpoint": "/v1/chat/completions",
        "customer_id": f"cust-{i % 5}",
        "key_id": f"key-{i % 5}",
        "effective_tier": "enterprise",
        "kyc_level": "kyb_verified",
        "citizenships": ["DE"],
        "residence": "DE",
        "origin_country": "DE" if i % 2 else "US",
        "origin_region": None,
        "client_ip": "203.0.113.77",
        "model": "fable-5" if i % 2 else "haiku-lite",
        "capabilities": ["coding"],
        "rule_ids": ["tier-entitlement"] if i % 3 else ["directive-frontier-us-persons-only"],
        "reasons": [],
        "policy_version": "v" * 64,
        "quota": {"bucket": "default", "remaining": 10},
        "prompt_sha256": "ab" * 32,
        "facts": {"principal": {"tier": "enterprise"}, "body": {"model": "fable-5"}},
    }
    values.update(overrides)
    return DecisionRecord(**values)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db" / "gateway.db"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return make_settings(db_path)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(settings)
    async with eng.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def signer(settings: Settings) -> Signer:
    return load_signer(settings)


@pytest.fixture
async def writer_factory(
    engine: AsyncEngine, signer: Signer
) -> AsyncIterator[Callable[..., Any]]:
    started: list[AuditWriter] = []

    async def factory(settings: Settings, **kwargs: Any) -> AuditWriter:
        w = AuditWriter(engine, settings, signer, **kwargs)
        await w.start()
        started.append(w)
        return w

    yield factory
    for w in started:
        if w._task is not None:
            await w.stop()


@pytest.fixture
async def writer(writer_factory: Callable[..., Any], settings: Settings) -> AuditWriter:
    w: AuditWriter = await writer_factory(settings)
    return w
