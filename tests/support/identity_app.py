"""Test helpers for identity/KYC/admin: a real SQLite database in a temp dir and
a small FastAPI app carrying a Services-like object with the parts those
routers use (settings, sessions, identifier, locator, clock, extras, policy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin.auth import create_admin_token
from gateway.admin.routers import answer_store_unavailable, guard_admin_input
from gateway.db.session import create_engine, session_factory
from gateway.geo.origin import Origin
from gateway.policy.holder import PolicyHolder
from gateway.quota.memory import MemoryStore
from gateway.quota.meter import Meter
from gateway.settings import Settings
from tests.support.schema import ensure_schema

BUNDLED_POLICIES = Path(__file__).resolve().parents[2] / "policies"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
        "demo": True,
        "sqlite_synchronous": "NORMAL",
    }
    values.update(overrides)
    return Settings(**values)


async def admin_tokens(
    sessions: async_sessionmaker[AsyncSession], roles: tuple[str, ...], prefix: str = "test"
) -> dict[str, str]:
    """One real admin token per role (named ``{prefix}-{role}``): role -> clear token."""
    tokens: dict[str, str] = {}
    async with sessions() as session:
        for role in roles:
            _, clear = await create_admin_token(session, role, f"{prefix}-{role}")
            tokens[role] = clear
        await session.commit()
    return tokens


async def make_db(settings: Settings) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings)
    await ensure_schema(engine)
    return engine, session_factory(engine)


class PeerLocator:
    """Believes the socket peer only (no trusted proxies in these tests)."""

    def locate(self, peer_ip: str | None, forwarded_for: str | None) -> Origin:
        return Origin(client_ip=peer_ip)


class Clock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class TestServices:
    __test__ = False  # a helper, not a test class (pytest would try to collect it)

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    identifier: Any
    clock: Callable[[], datetime]
    locator: PeerLocator = field(default_factory=PeerLocator)
    extras: dict[str, Any] = field(default_factory=dict)
    policy: PolicyHolder = field(default_factory=lambda: PolicyHolder(BUNDLED_POLICIES))
    """The bundled policies, loaded for real: the admin routes check KYC levels
    and tiers against ``policy.current``."""
    meter: Meter = field(default_factory=lambda: Meter(MemoryStore()))
    """An in-process meter, as a gateway without GATEWAY_REDIS_URL runs."""


def make_app(services: TestServices, *routers: Any) -> FastAPI:
    app = FastAPI()
    app.state.services = services
    for router in routers:
        app.include_router(router)
    answer_store_unavailable(app)  # as the real app does (gateway.admin.routers)
    guard_admin_input(app)
    return app
