"""A compliance decision made while a rescreen batch is in flight, between
the batch reading its customers and writing their screenings (shared by the
SQLite tests and the PostgreSQL ones).

The batch's read and write are interleaved with the officer's change through
``gateway.kyc.rescreen.reviews_of_customers``, which every batch calls once
it has read its customers and before it writes: the real change, in its own
session and transaction, is committed there, as a compliance officer's PATCH
(or another replica's rescreen) arriving at that moment would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminActor
from gateway.kyc import own_events, rescreen, service
from gateway.kyc.list_update import LIST_UPDATE_ACTOR
from gateway.kyc.rescreen import RescreenOutcome, rescreen_in_batches
from gateway.kyc.schemas import CustomerCreate, CustomerPatch, KycEvent
from gateway.kyc.screening import Screener, screener_from_path
from gateway.kyc.tables import Customer, ScreeningReview

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
OFFICER = AdminActor(name="officer", role="compliance", token_id=None)
VENDOR = AdminActor(name="kyc-vendor", role="admin", token_id=None)
HEADER = "name,alt_names,type,source\n"
BRENHOLT = "Brenholt Ventures,,Entity,SYN-EL\n"
ZOLTRAVA = "Zoltrava Shipping,,Entity,SYN-EL\n"
CUSTOMER = "cus_zoltrava"


def lists(tmp_path: Path) -> tuple[Screener, Screener]:
    """The list the customer was screened against (no hit) and its update (a hit)."""
    old, new = tmp_path / "v1.csv", tmp_path / "v2.csv"
    old.write_text(HEADER + BRENHOLT)
    new.write_text(HEADER + BRENHOLT + ZOLTRAVA)
    return screener_from_path(old, 0.9), screener_from_path(new, 0.9)


async def clear_customer(sessions: Sessions, old: Screener) -> None:
    """A customer the old list does not name (``clear``), named by the new one."""
    async with sessions() as session:
        data = CustomerCreate(id=CUSTOMER, name="Zoltrava Shipping Ltd")
        c = await service.create_customer(session, data, OFFICER, old, NOW)
        assert c.sanctions_status == "clear"
        await session.commit()


async def set_status(sessions: Sessions, status: str, at: datetime) -> None:
    """The officer's PATCH of ``sanctions_status``, committed."""
    async with sessions() as session:
        patch = CustomerPatch.model_validate({"sanctions_status": status})
        await service.update_customer(session, CUSTOMER, patch, OFFICER, None, at)
        await session.commit()


def between_read_and_write(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[], Awaitable[None]]
) -> None:
    """Run ``change`` (once) after the next batch has read its customers."""
    real = rescreen.reviews_of_customers
    pending = [change]

    async def reviews_then_change(
        session: AsyncSession, ids: Sequence[str]
    ) -> dict[str, list[ScreeningReview]]:
        found = await real(session, ids)
        if pending:
            await pending.pop()()
        return found

    monkeypatch.setattr(rescreen, "reviews_of_customers", reviews_then_change)


async def stored(sessions: Sessions) -> tuple[str, list[bool]]:
    """The customer's sanctions status and whether each stored hit is reviewed."""
    async with sessions() as session:
        c = await service.get_customer(session, CUSTOMER)
        return c.sanctions_status, [bool(h["reviewed"]) for h in c.screening_hits or ()]


async def clearance_during_batch(
    sessions: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RescreenOutcome, tuple[str, list[bool]]]:
    """Two rescreens of the updated list (two replicas starting, or a CLI run
    beside one): the second reads the customer still ``clear``; the first
    holds it and an officer reviews the hit and clears it before the second
    writes. The second's outcome and the customer as stored after it."""
    old, new = lists(tmp_path)
    await clear_customer(sessions, old)

    async def first_run_then_clearance() -> None:
        first = await rescreen_in_batches(sessions, new, LIST_UPDATE_ACTOR, NOW)
        assert [c.id for c in first.held] == [CUSTOMER]
        await set_status(sessions, "clear", NOW + timedelta(minutes=5))
        assert await stored(sessions) == ("clear", [True])

    between_read_and_write(monkeypatch, first_run_then_clearance)
    second = await rescreen_in_batches(sessions, new, LIST_UPDATE_ACTOR,
                                       NOW + timedelta(seconds=1))  # fmt: skip
    return second, await stored(sessions)


async def confirmation_during_batch(
    sessions: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RescreenOutcome, tuple[str, list[bool]]]:
    """A rescreen reads the customer ``clear``; an officer sets it to
    ``confirmed_match`` before the batch writes. The batch's outcome and the
    customer as stored after it."""
    old, new = lists(tmp_path)
    await clear_customer(sessions, old)

    async def confirmation() -> None:
        await set_status(sessions, "confirmed_match", NOW + timedelta(minutes=5))

    between_read_and_write(monkeypatch, confirmation)
    outcome = await rescreen_in_batches(sessions, new, LIST_UPDATE_ACTOR, NOW)
    return outcome, await stored(sessions)


ORG = "org_merlion"


async def _held_org(sessions: Sessions, old: Screener) -> None:
    """An organization held for one owner's hit on the old list; the new list
    names its other owner too."""
    data = CustomerCreate.model_validate({
        "id": ORG, "name": "Merlion Trading Pte", "kind": "organization",
        "ownership": [{"country": "SG", "percent": 60, "name": "Zoltrava Shipping Ltd"},
                      {"country": "SG", "percent": 40, "name": "Brenholt Venturas Ltd"}],
    })  # fmt: skip
    async with sessions() as session:
        c = await service.create_customer(session, data, OFFICER, old, NOW)
        assert c.sanctions_status == "potential_match"
        await session.commit()


async def batch_during_clearance(
    sessions: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, dict[str, bool]]:
    """An officer's PATCH clearing the one hit it was shown; a rescreen of an
    updated list, naming the other owner, runs once the PATCH has read the
    customer (given a second to finish: it cannot while the PATCH holds the
    row). The customer as stored after both: its status and, by listed name,
    whether each hit is reviewed."""
    old_path, new_path = tmp_path / "o1.csv", tmp_path / "o2.csv"
    old_path.write_text(HEADER + ZOLTRAVA)
    new_path.write_text(HEADER + ZOLTRAVA + BRENHOLT)
    old, new = screener_from_path(old_path, 0.9), screener_from_path(new_path, 0.9)
    await _held_org(sessions, old)
    real = service.get_customer
    batches: list[asyncio.Task[RescreenOutcome]] = []

    async def read_then_batch(session: AsyncSession, customer_id: str) -> Customer:
        found = await real(session, customer_id)
        if not batches:
            batches.append(asyncio.create_task(
                rescreen_in_batches(sessions, new, LIST_UPDATE_ACTOR, NOW)))  # fmt: skip
            await asyncio.wait(batches, timeout=1.0)
        return found

    monkeypatch.setattr(service, "get_customer", read_then_batch)
    async with sessions() as session:
        patch = CustomerPatch(sanctions_status="clear")
        await service.update_customer(session, ORG, patch, OFFICER, new,
                                      NOW + timedelta(minutes=5))  # fmt: skip
        await session.commit()
    assert len(batches) == 1
    await batches[0]
    monkeypatch.undo()
    async with sessions() as session:
        c = await service.get_customer(session, ORG)
        reviewed = {str(h["listed_name"]): bool(h["reviewed"]) for h in c.screening_hits or ()}
        return c.sanctions_status, reviewed


async def rename_at_one_clock_reading(
    sessions: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RescreenOutcome, str]:
    """A rescreen of the updated list reads a customer neither list names;
    before the batch writes, a replica still screening with the old list
    renames it to a name the updated list names, its clock reading the
    instant the record was last written (a coarse clock, one stepped back,
    or two writes in one tick): ``updated_at``, ``sanctions_status`` and
    ``screened_at`` are all as the batch read them. The batch's outcome and
    the customer's sanctions status after it."""
    old, new = lists(tmp_path)
    async with sessions() as session:
        data = CustomerCreate(id=CUSTOMER, name="Jane Smith")
        await service.create_customer(session, data, OFFICER, old, NOW)
        await session.commit()

    async def rename() -> None:
        async with sessions() as session:
            patch = CustomerPatch(name="Zoltrava Shipping Ltd")
            renamed = await service.update_customer(session, CUSTOMER, patch, OFFICER, old, NOW)
            assert renamed.sanctions_status == "clear"  # the old list does not name it
            await session.commit()

    between_read_and_write(monkeypatch, rename)
    outcome = await rescreen_in_batches(sessions, new, LIST_UPDATE_ACTOR,
                                        NOW + timedelta(seconds=1))  # fmt: skip
    async with sessions() as session:
        return outcome, (await service.get_customer(session, CUSTOMER)).sanctions_status


async def kyc_event_during_batch(
    sessions: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RescreenOutcome, str, str]:
    """A rescreen of the updated list reads a ``clear`` customer that list
    names; a KYC webhook's event for it is applied before the batch writes.
    The batch's outcome, and the customer's sanctions status and KYC level
    after both."""
    old, new = lists(tmp_path)
    await clear_customer(sessions, old)

    async def kyc_event() -> None:
        async with sessions() as session:
            event = KycEvent(id="evt_batch", customer_id=CUSTOMER, kyc_level="verified",
                             kyc_verified_at=NOW)  # fmt: skip
            applied = await own_events.apply_kyc_event(session, event, VENDOR,
                                                       NOW + timedelta(minutes=5))  # fmt: skip
            assert applied.applied
            await session.commit()

    between_read_and_write(monkeypatch, kyc_event)
    outcome = await rescreen_in_batches(sessions, new, LIST_UPDATE_ACTOR, NOW)
    async with sessions() as session:
        c = await service.get_customer(session, CUSTOMER)
        return outcome, c.sanctions_status, c.kyc_level
