"""The change feed (gateway/ops/changefeed.py) against real SQLite and PostgreSQL.

"Another process" is a second engine on the same database that writes the way
the CLI does (a session, the identity service functions, commit) and tells
nobody. The reading side caches for 30 s, so whatever changes here went
through the feed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import gateway.db.models  # noqa: F401
from gateway.admin.auth import AdminAuthenticator
from gateway.db.base import Base
from gateway.db.session import create_engine, session_factory
from gateway.identity.admin_log import record_admin_action
from gateway.identity.identifier import GatewayIdentifier
from gateway.identity.keys import create_api_key, revoke_api_key
from gateway.identity.tables import AdminToken
from gateway.kyc import service
from gateway.kyc.schemas import CustomerCreate, CustomerPatch
from gateway.ops.changefeed import LOOKBACK_S, ChangeFeed
from gateway.ops.cluster import ClusterPolicyHolder
from gateway.policy.holder import ReloadResult
from gateway.policy.loader import load_dir
from gateway.settings import Settings
from gateway.stages import AuthenticationFailed
from tests.identity.conftest import ACTOR, NOW, Db, FakeMonotonic
from tests.support import postgres_server
from tests.support.identity_app import admin_tokens, make_settings
from tests.support.processes import REPO

Sessions = async_sessionmaker[AsyncSession]
EXTRA_RULE = """
  - id: feed-test-deny
    effect: deny
    when: {customer_in: [cus_feed_test]}
    reason: Added by the change-feed test.
"""


class CountingPolicy(ClusterPolicyHolder):
    reloads = 0

    async def reload_from_peer(self) -> ReloadResult:
        self.reloads += 1
        return await super().reload_from_peer()


@pytest.fixture
def policy(tmp_path: Path) -> CountingPolicy:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    return CountingPolicy(tmp_path / "policies")


async def add_customer(sessions: Sessions, cid: str) -> None:
    data = CustomerCreate.model_validate({"id": cid, "name": f"Customer {cid}"})
    async with sessions() as session:
        await service.create_customer(session, data, ACTOR, None, NOW)
        await session.commit()


async def new_key(sessions: Sessions, cid: str) -> tuple[str, str]:
    async with sessions() as session:
        row, clear = await create_api_key(session, cid, ACTOR, NOW)
        await session.commit()
    return row.id, clear


async def revoke_cached_key_elsewhere(identifier: GatewayIdentifier, other: Sessions,
                                      feed: ChangeFeed, key_id: str, clear: str) -> None:
    """Cache the key here, revoke it through ``other``, wait (2 s at most) for the
    running feed to apply a change."""
    await identifier.identify(None, clear)
    async with other() as session:
        await revoke_api_key(session, key_id, ACTOR, NOW)
        await session.commit()
    for _ in range(100):
        if feed.applied:
            break
        await asyncio.sleep(0.02)


@pytest.fixture
async def other(tmp_path: Path) -> AsyncIterator[Sessions]:
    """A second engine on the same SQLite file: the CLI, another worker."""
    engine = create_engine(make_settings(tmp_path))
    yield session_factory(engine)
    await engine.dispose()


async def test_changes_made_elsewhere_reach_the_caches(
    db: Db, identifier: GatewayIdentifier, mono: FakeMonotonic, other: Sessions,
    policy: CountingPolicy,
) -> None:  # fmt: skip
    admin = AdminAuthenticator(db.sessions, None, 30.0)
    feed = ChangeFeed(db.sessions, identifier, admin, policy, interval_s=3600, clock=mono)
    await add_customer(other, "c1")
    key_id, clear = await new_key(other, "c1")
    await feed.start()
    try:
        assert await feed.poll() == 0  # what existed at start is not "new"

        # Cached here, then revoked elsewhere: the cache alone would keep it for 30 s.
        assert (await identifier.identify(None, clear)).key_id == key_id
        async with other() as session:
            await revoke_api_key(session, key_id, ACTOR, NOW)
            await session.commit()
        assert (await identifier.identify(None, clear)).key_id == key_id
        assert await feed.poll() == 1
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await identifier.identify(None, clear)

        # A customer suspended elsewhere: the next request sees the new status.
        _, clear2 = await new_key(other, "c1")
        assert (await identifier.identify(None, clear2)).status == "active"
        async with other() as session:
            await service.update_customer(
                session, "c1", CustomerPatch(status="suspended"), ACTOR, None, NOW
            )
            await session.commit()
        await feed.poll()
        assert (await identifier.identify(None, clear2)).status == "suspended"

        # An admin token revoked elsewhere stops authenticating here.
        token = (await admin_tokens(other, ("auditor",), prefix="feed"))["auditor"]
        assert await admin.authenticate(token) is not None
        token_id = token.split("_")[1]
        async with other() as session:
            row = await session.get(AdminToken, token_id)
            assert row is not None
            row.revoked_at = NOW
            record_admin_action(session, ACTOR, "token.revoke", "admin_token", token_id,
                                None, None, NOW)  # fmt: skip
            await session.commit()
        assert await admin.authenticate(token) is not None  # still cached
        await feed.poll()
        assert await admin.authenticate(token) is None

        # Rows already applied are not applied again, however often the window is re-read.
        assert await feed.poll() == 0
        mono.t += LOOKBACK_S + 1
        assert await feed.poll() == 0
    finally:
        await feed.stop()


async def test_the_running_feed_polls_by_itself(
    db: Db, identifier: GatewayIdentifier, other: Sessions, policy: CountingPolicy
) -> None:
    admin = AdminAuthenticator(db.sessions, None, 30.0)
    feed = ChangeFeed(db.sessions, identifier, admin, policy, interval_s=0.05)
    await add_customer(other, "c2")
    key_id, clear = await new_key(other, "c2")
    await feed.start()
    try:
        await revoke_cached_key_elsewhere(identifier, other, feed, key_id, clear)
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await identifier.identify(None, clear)
    finally:
        await feed.stop()


async def test_a_policy_reload_elsewhere_reloads_here(
    db: Db, identifier: GatewayIdentifier, mono: FakeMonotonic, other: Sessions,
    policy: CountingPolicy, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    feed = ChangeFeed(db.sessions, identifier, AdminAuthenticator(db.sessions, None, 30.0),
                      policy, interval_s=3600, clock=mono)  # fmt: skip
    await feed.start()

    async def reloaded_elsewhere(version: str) -> None:
        async with other() as session:
            record_admin_action(session, ACTOR, "policy.reload", "policy", version,
                                None, {"version": version}, NOW)  # fmt: skip
            await session.commit()

    try:
        # The version already in force here: nothing to do.
        await reloaded_elsewhere(policy.current.version)
        assert await feed.poll() == 1 and policy.reloads == 0

        # Another process reloaded a changed directory (the same files here).
        rules = policy.policy_dir / "rules.yaml"
        rules.write_text(rules.read_text().rstrip("\n") + "\n" + EXTRA_RULE)
        new_version = load_dir(policy.policy_dir).version
        assert new_version is not None and new_version != policy.current.version
        await reloaded_elsewhere(new_version)
        assert await feed.poll() == 1
        assert policy.reloads == 1 and policy.current.version == new_version

        # A reload row this process has since moved past (it loaded a newer
        # bundle after the row's time: an edit on disk) is not a disagreement
        # between replicas; a row newer than this process's bundle that its
        # directory cannot reproduce is.
        with caplog.at_level(logging.INFO, logger="gateway.cluster"):
            await reloaded_elsewhere("0" * 64)  # dated NOW, before this process loaded
            assert await feed.poll() == 1
            assert [r.levelno for r in caplog.records] == [logging.INFO]
            caplog.clear()
            later = datetime.now(UTC) + timedelta(hours=1)
            async with other() as session:
                record_admin_action(session, ACTOR, "policy.reload", "policy", "1" * 64, None,
                                    {"version": "1" * 64}, later)  # fmt: skip
                await session.commit()
            assert await feed.poll() == 1
            assert [r.levelno for r in caplog.records] == [logging.ERROR]
    finally:
        await feed.stop()


async def test_the_feed_outlives_a_failed_poll(
    db: Db, identifier: GatewayIdentifier, other: Sessions, policy: CountingPolicy
) -> None:
    failures = 0

    def sessions() -> AsyncSession:
        # The database "goes away" for the first poll after start-up.
        nonlocal failures
        if started and failures == 0:
            failures += 1
            raise OperationalError("SELECT", {}, Exception("database is down"))
        return db.sessions()

    started = False
    admin = AdminAuthenticator(db.sessions, None, 30.0)
    feed = ChangeFeed(sessions, identifier, admin, policy, interval_s=0.05)  # type: ignore[arg-type]
    await add_customer(other, "c3")
    key_id, clear = await new_key(other, "c3")
    await feed.start()
    started = True
    try:
        await revoke_cached_key_elsewhere(identifier, other, feed, key_id, clear)
        assert failures == 1
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await identifier.identify(None, clear)
    finally:
        await feed.stop()


# --- PostgreSQL: ids taken before others can commit after them ----------------


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres_server.PostgresServer]:
    if not postgres_server.available():
        pytest.skip("PostgreSQL is not installed")
    server = postgres_server.PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.mark.postgres
async def test_a_write_that_commits_late_is_not_skipped(
    pg: postgres_server.PostgresServer, mono: FakeMonotonic, policy: CountingPolicy
) -> None:
    settings = Settings(database_url=pg.create_database(), upstream_url="http://127.0.0.1:9")
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = session_factory(engine)
    identifier = GatewayIdentifier(sessions, cache_ttl_seconds=30.0, clock=mono)
    feed = ChangeFeed(sessions, identifier, AdminAuthenticator(sessions, None, 30.0),
                      policy, interval_s=3600, clock=mono)  # fmt: skip
    try:
        await add_customer(sessions, "late")
        await add_customer(sessions, "early")
        late_id, late_key = await new_key(sessions, "late")
        early_id, early_key = await new_key(sessions, "early")
        await feed.start()
        await identifier.identify(None, late_key)
        await identifier.identify(None, early_key)

        # The slow transaction takes the lower id first and commits last.
        slow = sessions()
        await revoke_api_key(slow, late_id, ACTOR, NOW + timedelta(seconds=1))
        await slow.flush()
        async with sessions() as fast:
            await revoke_api_key(fast, early_id, ACTOR, NOW + timedelta(seconds=2))
            await fast.commit()
        mono.t += 1
        assert await feed.poll() == 1
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await identifier.identify(None, early_key)
        await identifier.identify(None, late_key)  # not committed yet: still valid

        await slow.commit()
        await slow.close()
        mono.t += 1
        assert await feed.poll() == 1
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await identifier.identify(None, late_key)
    finally:
        await feed.stop()
        await identifier.stop()
        await engine.dispose()
