"""The live-streams registry over a real SQLite store: a change to an account
reaches the streams in flight for it, once per key, and a change made while a
request was still on its way to its stream is not missed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.identity.identifier import GatewayIdentifier
from gateway.identity.keys import create_api_key, revoke_api_key
from gateway.identity.store import load_key
from gateway.kyc import service
from gateway.kyc.schemas import CustomerCreate, CustomerPatch
from gateway.policy.holder import PolicyHolder
from gateway.proxy import stream_deadlines
from gateway.proxy.cut import Cut, StreamPolicyWatch
from gateway.proxy.live_streams import ATTEMPTS, UNCONFIRMED, LiveStreams
from tests.identity.conftest import ACTOR, NOW
from tests.policy.conftest import POLICIES, facts, principal
from tests.support.identity_app import make_db, make_settings

Sessions = async_sessionmaker[AsyncSession]
ENTERPRISE = {
    "name": "Acme Robotics Inc", "kind": "organization", "residence": "US",
    "incorporated_in": "US", "kyc_level": "kyb_verified", "tier": "enterprise",
}  # fmt: skip


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    engine, made = await make_db(make_settings(tmp_path))
    async with made() as session:
        await service.create_customer(
            session, CustomerCreate.model_validate({"id": "acme", **ENTERPRISE}), ACTOR, None, NOW
        )
        await session.commit()
    yield made
    await engine.dispose()


async def _key(sessions: Sessions) -> str:
    async with sessions() as session:
        row, _ = await create_api_key(session, "acme", ACTOR, NOW)
        await session.commit()
        return row.id


async def _watch(sessions: Sessions, key_id: str) -> StreamPolicyWatch:
    async with sessions() as session:
        record = await load_key(session, key_id)
    assert record is not None
    holder = PolicyHolder(POLICIES)
    return StreamPolicyWatch(holder, holder.current, record.principal, facts("haiku-lite"),
                             lambda: NOW)  # fmt: skip


async def _settled(live: LiveStreams) -> None:
    for _ in range(200):
        if not live._running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the re-check never finished")


async def test_a_revocation_and_a_suspension_reach_the_streams_through_the_identifier(
    sessions: Sessions,
) -> None:
    identifier = GatewayIdentifier(sessions, cache_ttl_seconds=30.0)
    live = LiveStreams(sessions)
    identifier.on_change(live.changed)
    revoked, kept = await _key(sessions), await _key(sessions)
    first, second, other = [await _watch(sessions, k) for k in (revoked, revoked, kept)]
    for watch in (first, second, other):
        live.add(watch, time.perf_counter())
    async with sessions() as session:
        await revoke_api_key(session, revoked, ACTOR, NOW)
        await session.commit()
    await identifier.invalidate_key(revoked, propagate=False)  # as from the change feed
    await _settled(live)
    assert live.reads == 1  # one read for the key, whatever its number of streams
    for watch in (first, second):
        assert watch.due() and watch.check() == Cut(
            "key-revoked", "gateway key revoked", "account", 401
        )
    assert not other.due()  # another key of the same customer

    async with sessions() as session:
        patch = CustomerPatch.model_validate({"status": "suspended"})
        await service.update_customer(session, "acme", patch, ACTOR, None, NOW)
        await session.commit()
    await identifier.invalidate_customer("acme", propagate=False)
    await _settled(live)
    assert other.due()
    cut = other.check()
    assert cut is not None and cut.outcome_error == "account_cut:customer-suspended"
    for watch in (first, second, other):
        live.discard(watch)
    assert live.count == 0


async def test_a_change_made_before_the_stream_was_added_is_not_missed(
    sessions: Sessions,
) -> None:
    live = LiveStreams(sessions)
    key = await _key(sessions)
    before = time.perf_counter()
    live.changed("customer", "acme")  # before its request started: already read by it
    started = time.perf_counter()
    async with sessions() as session:
        await revoke_api_key(session, key, ACTOR, NOW)
        await session.commit()
    live.changed("key", key)  # while the request waited for the upstream's first byte
    late = await _watch(sessions, key)
    live.add(late, started)
    await _settled(live)
    assert late.due() and late.check() == Cut("key-revoked", "gateway key revoked",
                                              "account", 401)  # fmt: skip
    live.discard(late)
    on_time = await _watch(sessions, await _key(sessions))
    live.add(on_time, before)  # started before the customer's change: re-read
    reads = live.reads
    await _settled(live)
    assert live.reads == reads + 1 and on_time.due() and on_time.check() is None
    unchanged = await _watch(sessions, await _key(sessions))
    live.add(unchanged, time.perf_counter())
    await _settled(live)
    assert live.reads == reads + 1 and not unchanged.due()


async def test_an_account_that_cannot_be_read_after_a_change_ends_its_streams(
    sessions: Sessions,
) -> None:
    live = LiveStreams(sessions, retry_s=0.01)
    watch = await _watch(sessions, await _key(sessions))
    live.add(watch, time.perf_counter())
    async with sessions() as session:
        await session.execute(text("DROP TABLE api_keys"))  # the store fails every read
        await session.commit()
    live.changed("customer", "acme")
    await _settled(live)
    assert live.reads == ATTEMPTS
    assert watch.due() and watch.check() == UNCONFIRMED  # fail closed


async def test_a_kyc_lapse_hours_ahead_ends_the_stream_when_it_comes(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream that outlives its customer's KYC expiry, hours after it was
    # admitted: nothing is written at the expiry, yet a new request would be
    # refused the model from then on. One timer for the soonest deadline of
    # all streams wakes it; the wall clock is re-read at least every
    # MAX_SLEEP_S (here jumped forward by two hours instead of waited for).
    monkeypatch.setattr(stream_deadlines, "MAX_SLEEP_S", 0.02)
    shift = [0.0]

    def wall() -> float:
        return time.time() + shift[0]

    def now() -> datetime:
        return datetime.fromtimestamp(wall(), UTC)

    live = LiveStreams(sessions, wall_clock=wall)
    holder = PolicyHolder(POLICIES)
    lapse = now() + timedelta(hours=2)
    customer = {"tier": "enterprise", "kyc_level": "kyb_verified",
                "citizenships": ["US"], "residence": "US"}  # fmt: skip
    expiring = principal(**customer, customer_id="acme", kyc_expires_at=lapse)
    renewed = principal(**customer, customer_id="acme", kyc_expires_at=lapse + timedelta(days=365))
    doomed, kept = (StreamPolicyWatch(holder, holder.current, expiring, facts("fable-5"), now)
                    for _ in range(2))  # fmt: skip
    for watch in (doomed, kept):
        live.add(watch, time.perf_counter())
    kept.account_changed(renewed)  # an officer renewed it (the read the change causes)
    assert kept.check() is None
    await asyncio.sleep(0.05)
    assert not doomed.due() and not kept.due()
    shift[0] = timedelta(hours=2, seconds=1).total_seconds()
    await asyncio.sleep(0.1)
    assert doomed.due(), "the KYC lapse passed and the stream was not decided again"
    cut = doomed.check()
    assert cut is not None and cut.outcome_error == "account_cut:default-deny", cut
    assert "KYC expired" in cut.message, cut.message
    assert not kept.due()  # the renewed customer's stream: its old lapse is no deadline
    for watch in (doomed, kept):
        live.discard(watch)
    await live.stop()


async def test_streams_that_ended_leave_no_deadline_behind(sessions: Sessions) -> None:
    # Most verified customers' KYC expires months ahead: each stream brings a
    # deadline that is almost never reached. Ended streams' entries must not
    # pile up until then, nor wake anything.
    live = LiveStreams(sessions)
    holder = PolicyHolder(POLICIES)
    months = datetime.now(UTC) + timedelta(days=90)
    customer = principal(tier="enterprise", kyc_level="kyb_verified", citizenships=["US"],
                         residence="US", customer_id="acme", kyc_expires_at=months)  # fmt: skip
    for _ in range(1000):
        watch = StreamPolicyWatch(holder, holder.current, customer, facts("fable-5"),
                                  lambda: datetime.now(UTC))  # fmt: skip
        live.add(watch, time.perf_counter())
        live.discard(watch)
    assert live.count == 0
    assert len(live._deadlines) <= 64, len(live._deadlines)
    await live.stop()


async def test_a_burst_of_streams_that_ended_leaves_no_deadline_behind(sessions: Sessions) -> None:
    # Many streams at once, then none: each entry stayed in the heap (its
    # watch, principal, facts and bundle with it) until more streams came to
    # push the heap past twice its last compacted size, or its deadline,
    # months ahead, came. A quiet worker after a burst kept them all.
    live = LiveStreams(sessions)
    holder = PolicyHolder(POLICIES)
    months = datetime.now(UTC) + timedelta(days=90)
    customer = principal(tier="enterprise", kyc_level="kyb_verified", citizenships=["US"],
                         residence="US", customer_id="acme", kyc_expires_at=months)  # fmt: skip
    watches = [StreamPolicyWatch(holder, holder.current, customer, facts("fable-5"),
                                 lambda: datetime.now(UTC)) for _ in range(1000)]  # fmt: skip
    for watch in watches:
        live.add(watch, time.perf_counter())
    for watch in watches:
        live.discard(watch)
    assert live.count == 0
    assert len(live._deadlines) <= 64, len(live._deadlines)
    await live.stop()
