from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.identity import secrets as creds
from gateway.identity.identifier import GatewayIdentifier
from gateway.identity.keys import create_api_key, revoke_api_key
from gateway.identity.tables import AdminAction, ApiKey
from gateway.stages import AuthenticationFailed, IdentityStoreUnavailable
from tests.identity.conftest import ACTOR, NOW, Db, FakeMonotonic, add_customer
from tests.support.identity_app import make_db, make_settings


def tamper(value: str) -> str:
    """Change the last character (to a different one, whatever it was)."""
    return value[:-1] + ("b" if value[-1] == "a" else "a")


async def new_key(db: Db, cid: str, **kw: object) -> tuple[str, str]:
    async with db.sessions() as session:
        row, clear = await create_api_key(session, cid, ACTOR, NOW, **kw)  # type: ignore[arg-type]
        await session.commit()
    return row.id, clear


def test_key_format_and_hash() -> None:
    minted = creds.mint("gk")
    assert minted.clear == f"gk_{minted.id}_{minted.secret}"
    assert len(minted.secret) == 52  # 256 bits in base32 without padding
    parsed = creds.parse("gk", minted.clear)
    assert parsed is not None and parsed.id == minted.id and parsed.secret == minted.secret
    assert creds.verify_secret(minted.salt, minted.hash, minted.secret)
    assert not creds.verify_secret(minted.salt, minted.hash, tamper(minted.secret))
    # Same secret, different salt: different hash.
    assert creds.hash_secret("00" * 16, "x") != creds.hash_secret("11" * 16, "x")
    assert creds.parse("gk", "gk_only") is None
    assert creds.parse("gk", "gat_a_b") is None


async def test_only_hash_is_stored(db: Db, tmp_path: Path) -> None:
    await add_customer(db, "c1")
    key_id, clear = await new_key(db, "c1")
    secret = clear.split("_", 2)[2]
    async with db.sessions() as session:
        row = await session.get(ApiKey, key_id)
        assert row is not None and row.secret_hash != secret and secret not in row.prefix
        actions = (await session.execute(select(AdminAction))).scalars().all()
        assert [a.action for a in actions] == ["customer.create", "key.create"]
    await db.engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("gateway.db*"))
    assert secret.encode() not in raw


async def test_identify_caches_principal(
    db: Db, identifier: GatewayIdentifier, mono: FakeMonotonic
) -> None:
    await add_customer(
        db,
        "org1",
        kind="organization",
        incorporated_in="DE",
        ownership=[{"country": "CN", "percent": 60}],
        tier="enterprise",
        kyc_level="kyb_verified",
        attributes=["academic_affiliation"],
        kyc_expires_at="2027-01-01T00:00:00Z",
        kyc_verified_at="2026-01-02T03:04:05+01:00",
    )
    key_id, clear = await new_key(db, "org1")
    p = await identifier.identify(None, clear)
    assert p.customer_id == "org1" and p.key_id == key_id and p.tier == "enterprise"
    assert p.controlled_by({"CN"}, 50) and not p.controlled_by({"SG"}, 50)
    assert p.attributes == frozenset({"academic_affiliation"})
    assert p.kyc_expires_at is not None and p.kyc_expires_at.year == 2027
    # Tiers with kyc_max_age_days decide on it (policy/account_tier.py).
    assert p.kyc_verified_at == datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert identifier.db_reads == 1
    for _ in range(5):
        assert (await identifier.identify(f"  {clear} ", None)).customer_id == "org1"
    assert identifier.db_reads == 1  # hot path: no DB for a cached key
    # A wrong secret for the cached id still fails, without a DB read.
    with pytest.raises(AuthenticationFailed) as info:
        await identifier.identify(tamper(clear), None)
    assert info.value.key_id == key_id and identifier.db_reads == 1
    # TTL bound: after cache_ttl_seconds the record is re-read.
    mono.t += 31
    await identifier.identify(clear, None)
    assert identifier.db_reads == 2


async def test_revocation_and_invalidation(db: Db, identifier: GatewayIdentifier) -> None:
    await add_customer(db, "c1")
    key_id, clear = await new_key(db, "c1")
    await identifier.identify(clear, None)
    hooks: list[tuple[str, str]] = []
    identifier.on_invalidate(lambda kind, ident: hooks.append((kind, ident)))
    async with db.sessions() as session:
        await revoke_api_key(session, key_id, ACTOR, NOW)
        await session.commit()
    # Still cached until invalidated (another replica would wait out the TTL).
    await identifier.identify(clear, None)
    await identifier.invalidate_key(key_id)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await identifier.identify(clear, None)
    await identifier.invalidate_customer("c1")
    assert hooks == [("key", key_id), ("customer", "c1")]


async def test_expired_key(db: Db, identifier: GatewayIdentifier) -> None:
    await add_customer(db, "c1")
    _, clear = await new_key(db, "c1", expires_at=NOW + timedelta(days=1))
    ident = GatewayIdentifier(db.sessions, 30.0, wall_clock=lambda: NOW + timedelta(days=2))
    with pytest.raises(AuthenticationFailed, match="expired"):
        await ident.identify(clear, None)
    ok = GatewayIdentifier(db.sessions, 30.0, wall_clock=lambda: NOW)
    assert (await ok.identify(clear, None)).customer_id == "c1"


async def test_unknown_and_malformed(
    db: Db, identifier: GatewayIdentifier, mono: FakeMonotonic
) -> None:
    for bad in (None, "", "sk-openai-style", "gk_nosecret"):
        with pytest.raises(AuthenticationFailed):
            await identifier.identify(bad, None)
    with pytest.raises(AuthenticationFailed) as info:
        await identifier.identify("gk_deadbeef_secret", None)
    # The audit record's key_id names only keys that exist; the claim stays in the reason.
    assert info.value.key_id is None
    assert info.value.message == "unknown gateway key (claimed id deadbeef)"
    reads = identifier.db_reads
    with pytest.raises(AuthenticationFailed):
        await identifier.identify("gk_deadbeef_secret", None)
    assert identifier.db_reads == reads  # negative answer cached briefly
    mono.t += 6  # ...but not for long
    with pytest.raises(AuthenticationFailed):
        await identifier.identify("gk_deadbeef_secret", None)
    assert identifier.db_reads == reads + 1


async def test_unknown_key_ids_are_remembered_briefly_and_in_bounded_number(
    db: Db, mono: FakeMonotonic
) -> None:
    # The id is the caller's claim, unverified: remembering every miss for good
    # let unauthenticated guesses grow the process (20,000 ids: 5 MB).
    await add_customer(db, "c1")
    _, clear = await new_key(db, "c1")
    ident = GatewayIdentifier(db.sessions, 30.0, clock=mono, misses_capacity=50)
    try:
        await ident.identify(clear, None)
        for i in range(120):
            with pytest.raises(AuthenticationFailed):
                await ident.identify(f"gk_{i:016x}_guess", None)
        assert len(ident.key_misses) == 50
        reads = ident.db_reads
        # The latest misses still spare the store, and the known key is untouched.
        with pytest.raises(AuthenticationFailed):
            await ident.identify(f"gk_{119:016x}_guess", None)
        assert (await ident.identify(clear, None)).customer_id == "c1"
        assert ident.db_reads == reads
        # Expired misses are dropped, not only ignored.
        mono.t += 6
        with pytest.raises(AuthenticationFailed):
            await ident.identify("gk_feedface_guess", None)
        assert len(ident.key_misses) == 1
    finally:
        await ident.stop()


async def test_concurrent_misses_share_one_read(db: Db, identifier: GatewayIdentifier) -> None:
    await add_customer(db, "c1")
    _, clear = await new_key(db, "c1")
    results = await asyncio.gather(*(identifier.identify(clear, None) for _ in range(20)))
    assert {p.customer_id for p in results} == {"c1"}
    assert identifier.db_reads == 1


async def test_last_used_is_batched(db: Db, identifier: GatewayIdentifier) -> None:
    await add_customer(db, "c1")
    key_id, clear = await new_key(db, "c1")
    for _ in range(10):
        await identifier.identify(clear, None)
    async with db.sessions() as session:
        assert (await session.get(ApiKey, key_id)).last_used_at is None  # type: ignore[union-attr]
    assert identifier.last_used.pending == 1
    assert await identifier.last_used.flush() == 1
    async with db.sessions() as session:
        assert (await session.get(ApiKey, key_id)).last_used_at is not None  # type: ignore[union-attr]


async def test_store_down_is_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    engine, sessions = await make_db(settings)
    await engine.dispose()
    for p in tmp_path.glob("gateway.db*"):
        p.unlink()
    (tmp_path / "gateway.db").write_bytes(b"this is not a database" * 100)
    ident = GatewayIdentifier(sessions, 30.0)
    with pytest.raises(IdentityStoreUnavailable):
        await ident.identify("gk_abc_def", None)
    await engine.dispose()


async def test_last_used_flushing_outlives_an_unexpected_error(db: Db) -> None:
    """Only database errors were caught in the flush loop: anything else (a bug)
    ended the loop silently, and no key's last use was written again until a
    restart. It is logged and the next flush runs."""
    from gateway.identity.keys import LastUsedTracker

    await add_customer(db, "c1")
    key_id, _ = await new_key(db, "c1")
    opened = 0

    def sessions() -> object:
        nonlocal opened
        opened += 1
        if opened == 1:
            raise RuntimeError("a bug in the first flush")
        return db.sessions()

    tracker = LastUsedTracker(sessions, 0.01)  # type: ignore[arg-type]
    tracker.start()
    try:
        tracker.mark(key_id, NOW)
        for _ in range(100):
            if opened >= 1:
                break
            await asyncio.sleep(0.01)
        tracker.mark(key_id, NOW)  # after the failed flush: must still be written
        for _ in range(200):
            async with db.sessions() as session:
                row = await session.get(ApiKey, key_id)
                if row is not None and row.last_used_at is not None:
                    break
            await asyncio.sleep(0.01)
        assert row is not None and row.last_used_at is not None
    finally:
        await tracker.stop()
