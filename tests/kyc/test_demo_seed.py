from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from gateway.demo.seed import seed_demo
from gateway.identity.identifier import GatewayIdentifier
from gateway.identity.tables import ApiKey
from gateway.kyc.tables import Customer
from gateway.stages import AuthenticationFailed
from tests.support.identity_app import make_db, make_settings

NOW = datetime(2026, 6, 1, tzinfo=UTC)


async def test_seed_is_idempotent_and_keys_work(tmp_path: Path) -> None:
    engine, sessions = await make_db(make_settings(tmp_path))
    first = await seed_demo(sessions, now=NOW)
    assert len(first) == 8 and len({c.id for c in first}) == 8
    ident = GatewayIdentifier(sessions, 30.0, wall_clock=lambda: NOW)
    by_id = {c.id: await ident.identify(None, c.key) for c in first}
    assert by_id["demo-dual-us-cn"].is_us_person and by_id["demo-dual-us-cn"].tier == "government"
    assert by_id["demo-us-lpr"].is_us_person and "US" not in by_id["demo-us-lpr"].citizenships
    assert by_id["demo-cn-controlled"].controlled_by({"CN"}, 50)
    assert by_id["demo-de-enterprise"].kyc_level == "kyb_verified"
    expired = by_id["demo-kyc-expired"].kyc_expires_at
    assert expired is not None and expired < NOW
    assert by_id["demo-sanctions-hit"].sanctions_status == "potential_match"

    second = await seed_demo(sessions, now=NOW)
    assert [c.id for c in second] == [c.id for c in first]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 8
        live = select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
        assert await session.scalar(live) == 8
    fresh = GatewayIdentifier(sessions, 30.0, wall_clock=lambda: NOW)
    assert (await fresh.identify(None, second[0].key)).customer_id == "demo-gov-us"
    try:
        await fresh.identify(None, first[0].key)
        raise AssertionError("old demo key still valid")
    except AuthenticationFailed:
        pass
    await engine.dispose()


async def test_serve_demo_seed_screens_when_a_list_is_set(tmp_path: Path) -> None:
    """`gateway serve --demo` seeds through the loaded list, like every other write."""
    from gateway.cli.serve import _seed_demo
    from gateway.kyc.screening import load_screener

    list_path = Path(__file__).resolve().parents[1] / "data" / "sanctions_sample.csv"
    settings = make_settings(tmp_path, sanctions_list=list_path)
    engine, sessions = await make_db(settings)
    screener = load_screener(settings.sanctions_list, settings.sanctions_threshold)
    assert screener is not None
    await _seed_demo(settings, screener)
    async with sessions() as session:
        rows = {c.id: c for c in (await session.execute(select(Customer))).scalars()}
    assert all(c.screening_list_version == screener.version for c in rows.values())
    hit = rows["demo-sanctions-hit"]
    assert hit.screening_best_match is not None and (hit.screening_score or 0) >= 0.9
    await engine.dispose()
