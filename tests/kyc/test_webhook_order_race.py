"""Two KYC webhook deliveries for one customer (the gateway's own event shape and a
vendor verdict), the older one read first:
the newer one, committed between the older one's read and its write, must
not be rolled back by it (on SQLite the read ran outside any transaction, so
``FOR UPDATE``, which SQLite has not, serialised nothing; the delivery now
takes the write lock before it reads the stored verification)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.util import await_only

from gateway.admin.auth import AdminActor
from gateway.kyc import own_events, service, verdicts
from gateway.kyc.records import opt_utc
from gateway.kyc.schemas import CustomerCreate, KycEvent
from gateway.kyc.tables import Customer
from gateway.kyc.vendors import Verdict
from tests.support.identity_app import make_db, make_settings

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
VENDOR = AdminActor(name="kyc-vendor", role="admin", token_id=None)
LEVELS = ("none", "basic", "verified")


Sessions = async_sessionmaker[AsyncSession]
Deliver = Callable[[AsyncSession, str], Awaitable[object]]
"""Applies the delivery named (``older``, ``newer``) in the session given."""


async def own_event(session: AsyncSession, which: str) -> object:
    minutes, level = (10, "basic") if which == "older" else (20, "verified")
    kyc = KycEvent(id=f"evt_{which}", customer_id="cus_kyc", kyc_level=level,
                   kyc_verified_at=T0 + timedelta(minutes=minutes))  # fmt: skip
    return await own_events.apply_kyc_event(session, kyc, VENDOR, T0 + timedelta(hours=2))


async def vendor_verdict(session: AsyncSession, which: str) -> object:
    minutes, kind = (10, "fail") if which == "older" else (20, "pass")
    verdict = Verdict(vendor="persona", event_id=f"evt_{which}", event_type="inquiry",
                      kind=kind, at=T0 + timedelta(minutes=minutes), customer_id="cus_kyc",
                      subject="inq_1")  # fmt: skip
    return await verdicts.apply_verdict(session, verdict, "cus_kyc", LEVELS, "verified",
                                        timedelta(days=365), VENDOR, T0 + timedelta(hours=2))


async def _deliver(sessions: Sessions, deliver: Deliver, which: str) -> None:
    async with sessions() as session:
        await deliver(session, which)
        await session.commit()


async def newer_during_older(sessions: Sessions, deliver: Deliver) -> tuple[str, datetime | None]:
    """The older delivery reads the customer; the newer one arrives then.
    The customer's KYC level and verification time after both (shared with
    the PostgreSQL tests, ``tests/ops/test_customer_locks_postgres.py``)."""
    async with sessions() as session:
        data = CustomerCreate(id="cus_kyc", name="Jane Smith", kyc_level="basic",
                              kyc_verified_at=T0)  # fmt: skip
        await service.create_customer(session, data, VENDOR, None, T0, warn_unscreened=False)
        await session.commit()
    deliveries: list[asyncio.Task[None]] = []

    def newer_once_older_read(*_: Any) -> None:
        # The older delivery has read the customer: the newer one arrives now
        # (given a second to finish: it cannot while the older holds the lock).
        if not deliveries:
            deliveries.append(asyncio.get_running_loop().create_task(
                _deliver(sessions, deliver, "newer")))  # fmt: skip
            await_only(asyncio.wait(deliveries, timeout=1.0))

    event.listen(Customer, "load", newer_once_older_read)
    try:
        await _deliver(sessions, deliver, "older")
        await deliveries[0]
    finally:
        event.remove(Customer, "load", newer_once_older_read)
    async with sessions() as session:
        c = await service.get_customer(session, "cus_kyc")
        return c.kyc_level, opt_utc(c.kyc_verified_at)


NEWER = ("verified", T0 + timedelta(minutes=20))
DELIVERIES = [own_event, vendor_verdict]


@pytest.mark.parametrize("deliver", DELIVERIES)
async def test_an_older_delivery_read_first_does_not_roll_back_a_newer_one(
    tmp_path: Path, deliver: Deliver
) -> None:
    engine, sessions = await make_db(make_settings(tmp_path))
    try:
        assert await newer_during_older(sessions, deliver) == NEWER
    finally:
        await engine.dispose()
