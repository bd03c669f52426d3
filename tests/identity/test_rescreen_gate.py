"""A customer whose last screening was against another list or threshold than
the one in force (the start-up rescreen has not reached it yet, or it was
added by a process with another list) is not served on that stale ``clear``:
it is held (``public``) until it is screened against the list in force, and
its decision records say why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.admin.auth import AdminActor
from gateway.identity.identifier import GatewayIdentifier
from gateway.identity.keys import create_api_key
from gateway.identity.screening_summary import ListInForce
from gateway.kyc import service
from gateway.kyc.rescreen import rescreen_customers
from gateway.kyc.schemas import CustomerCreate
from gateway.kyc.screening import screener_from_path
from tests.support.identity_app import make_db, make_settings

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ACTOR = AdminActor(name="test", role="admin", token_id=None)
HEADER = "name,alt_names,type,source\n"
LOADED = NOW + timedelta(minutes=1)
"""When the serving process loaded its list: after the customer was screened."""


async def test_a_clear_verdict_of_another_list_is_held_until_rescreened(
    tmp_path: Path,
) -> None:
    engine, sessions = await make_db(make_settings(tmp_path))
    (tmp_path / "old.csv").write_text(HEADER + "Zoltrava Shipping,,Entity,SYN-EL\n")
    (tmp_path / "new.csv").write_text(HEADER + "Brenholt Ventures,,Entity,SYN-EL\n")
    old = screener_from_path(tmp_path / "old.csv", 0.9)
    new = screener_from_path(tmp_path / "new.csv", 0.9)
    async with sessions() as session:
        await service.create_customer(session, CustomerCreate(id="c1", name="Jane Smith"),
                                      ACTOR, old, NOW)  # fmt: skip
        _, key = await create_api_key(session, "c1", ACTOR, NOW, name="k")
        await session.commit()

    identifier = GatewayIdentifier(sessions, 0.0, wall_clock=lambda: NOW)
    identifier.list_in_force = ListInForce(new.version, new.threshold, LOADED)
    principal = await identifier.identify(None, key)
    assert principal.sanctions_status == "potential_match"
    assert principal.screening is not None
    assert principal.screening["awaiting_rescreen"] == {
        "list_version": new.version, "threshold": 0.9, "screened_list_version": old.version,
        "screened_threshold": 0.9,
    }, principal.screening
    # Another threshold is another screening too.
    identifier.list_in_force = ListInForce(old.version, 0.85, LOADED)
    assert (await identifier.identify(None, key)).sanctions_status == "potential_match"

    identifier.list_in_force = ListInForce(new.version, new.threshold, LOADED)
    async with sessions() as session:
        await rescreen_customers(session, new, ACTOR, NOW)
        await session.commit()
    principal = await identifier.identify(None, key)
    assert principal.sanctions_status == "clear" and principal.screening is None
    # Screened after this process loaded its list, against another one (an
    # operator ran `gateway customers rescreen` with the next list before
    # restarting): a verdict at least as recent, not held. Holding those
    # would hold every customer a rescreen ahead of the restart reached.
    async with sessions() as session:
        await rescreen_customers(session, old, ACTOR, LOADED + timedelta(seconds=1))
        await session.commit()
    assert (await identifier.identify(None, key)).sanctions_status == "clear"
    # No list in force: nothing to compare with (as before).
    identifier.list_in_force = None
    assert (await identifier.identify(None, key)).sanctions_status == "clear"
    await engine.dispose()


async def test_a_record_from_before_thresholds_were_kept_is_not_held(tmp_path: Path) -> None:
    """Migration b4f8e2c6a9d1 leaves every record's threshold NULL: the start-up
    rescreen screens them again, but holding the whole customer base while it
    runs, for records screened against the very list in force, would take the
    service from everyone at the first start after the upgrade."""
    engine, sessions = await make_db(make_settings(tmp_path))
    (tmp_path / "list.csv").write_text(HEADER + "Zoltrava Shipping,,Entity,SYN-EL\n")
    listed = screener_from_path(tmp_path / "list.csv", 0.9)
    async with sessions() as session:
        c = await service.create_customer(session, CustomerCreate(id="c1", name="Jane Smith"),
                                          ACTOR, listed, NOW)  # fmt: skip
        c.screening_threshold = None  # as migrated
        _, key = await create_api_key(session, "c1", ACTOR, NOW, name="k")
        await session.commit()
    identifier = GatewayIdentifier(sessions, 0.0, wall_clock=lambda: NOW)
    identifier.list_in_force = ListInForce(listed.version, 0.9, LOADED)
    assert (await identifier.identify(None, key)).sanctions_status == "clear"
    await engine.dispose()


async def test_a_held_customers_allowed_request_says_it_awaits_the_rescreen(
    tmp_path: Path,
) -> None:
    """Served as ``public`` on a hold, an allowed request's record said
    ``sanctions screening status is potential_match``, as for a real lead,
    while the customer record says ``clear`` and names no hit: the demotion
    now says that the hold waits for a rescreen, and against which list."""
    from gateway.policy.engine import decide
    from gateway.policy.loader import load_bundle
    from tests.policy.conftest import facts
    from tests.support.processes import REPO

    engine, sessions = await make_db(make_settings(tmp_path))
    (tmp_path / "old.csv").write_text(HEADER + "Zoltrava Shipping,,Entity,SYN-EL\n")
    (tmp_path / "new.csv").write_text(HEADER + "Brenholt Ventures,,Entity,SYN-EL\n")
    old = screener_from_path(tmp_path / "old.csv", 0.9)
    new = screener_from_path(tmp_path / "new.csv", 0.9)
    record = CustomerCreate(id="c1", name="Acme Robotics Inc", kind="organization",
                            residence="US", incorporated_in="US", kyc_level="kyb_verified",
                            tier="enterprise")  # fmt: skip
    async with sessions() as session:
        await service.create_customer(session, record, ACTOR, old, NOW)
        _, key = await create_api_key(session, "c1", ACTOR, NOW, name="k")
        await session.commit()
    identifier = GatewayIdentifier(sessions, 0.0, wall_clock=lambda: NOW)
    identifier.list_in_force = ListInForce(new.version, new.threshold, LOADED)
    principal = await identifier.identify(None, key)
    bundle = load_bundle(REPO / "policies")
    decision = decide(principal, facts(model="haiku-lite", country="US"), bundle, NOW)
    assert decision.allowed and decision.effective_tier == "public", decision
    why = decision.tier_demotion or ""
    assert why.startswith("sanctions screening status is potential_match: awaiting rescreen"), why
    assert new.version in why and old.version in why, why
    # A real lead keeps the plain reason (test_engine.py); so does a replay of
    # this record, which carries the status the engine saw, not the hold.
    await engine.dispose()
