"""An invalidation that lands while a cache miss is being read is not undone by it.

A request that misses the cache reads the key's row, then caches it for
``cache_ttl_seconds``. A revocation, suspension or KYC downgrade committed
while that read is in flight is invalidated at once, but there is nothing in
the cache yet to drop; the read, done before the commit, then cached the old
row, and every later request was served on it until the TTL ran out (30 s by
default): a revoked key kept working, a suspended customer kept being served.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.identity.identifier import GatewayIdentifier
from gateway.identity.keys import revoke_api_key
from gateway.identity.oidc import OidcVerifier
from gateway.stages import AuthenticationFailed
from tests.identity.conftest import ACTOR, NOW, Db, FakeMonotonic, add_customer
from tests.identity.test_keys import new_key
from tests.identity.test_oidc import AUDIENCE, Issuer, issuer  # noqa: F401  (fixture)


class HeldAfterRead:
    """The real session factory, except that an armed session waits, after its
    read and before it hands the result back, until released: the moment a
    concurrent write can commit and invalidate."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.armed = False
        self.read_done = asyncio.Event()
        self.release = asyncio.Event()

    def __call__(self) -> HeldAfterRead._Session:
        return HeldAfterRead._Session(self, self._sessions())

    class _Session:
        def __init__(self, gate: HeldAfterRead, inner: AsyncSession) -> None:
            self._gate = gate
            self._inner = inner

        async def __aenter__(self) -> AsyncSession:
            return await self._inner.__aenter__()

        async def __aexit__(
            self, kind: type[BaseException] | None, exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None:
            await self._inner.__aexit__(kind, exc, tb)
            if self._gate.armed:
                self._gate.armed = False
                self._gate.read_done.set()
                await self._gate.release.wait()


async def test_a_key_revoked_during_its_cache_miss_is_not_cached_as_valid(
    db: Db, mono: FakeMonotonic
) -> None:
    await add_customer(db, "c1")
    key_id, clear = await new_key(db, "c1")
    gate = HeldAfterRead(db.sessions)
    identifier = GatewayIdentifier(gate, cache_ttl_seconds=30.0, clock=mono)  # type: ignore[arg-type]
    try:
        gate.armed = True
        first = asyncio.create_task(identifier.identify(clear, None))
        await gate.read_done.wait()  # the key's row is read: not yet revoked
        async with db.sessions() as session:
            await revoke_api_key(session, key_id, ACTOR, NOW)
            await session.commit()
        await identifier.invalidate_key(key_id)  # what DELETE /keys/{id} does after commit
        gate.release.set()
        await first  # it started before the revocation: served
        mono.t += 1
        try:
            await identifier.identify(clear, None)
        except AuthenticationFailed as refused:
            assert "revoked" in refused.message
        else:
            raise AssertionError("a key revoked (and invalidated) a second ago still works")
    finally:
        await identifier.stop()


async def test_a_customer_suspended_during_its_cache_miss_is_not_cached_as_active(
    db: Db, mono: FakeMonotonic
) -> None:
    from gateway.kyc import service
    from gateway.kyc.schemas import CustomerPatch

    await add_customer(db, "c2")
    _, clear = await new_key(db, "c2")
    gate = HeldAfterRead(db.sessions)
    identifier = GatewayIdentifier(gate, cache_ttl_seconds=30.0, clock=mono)  # type: ignore[arg-type]
    try:
        gate.armed = True
        first = asyncio.create_task(identifier.identify(clear, None))
        await gate.read_done.wait()
        async with db.sessions() as session:
            patch = CustomerPatch.model_validate({"status": "suspended"})
            await service.update_customer(session, "c2", patch, ACTOR, None, NOW)
            await session.commit()
        await identifier.invalidate_customer("c2")  # what PATCH /customers/{id} does
        gate.release.set()
        assert (await first).status == "active"  # read before the suspension
        mono.t += 1
        assert (await identifier.identify(clear, None)).status == "suspended"
    finally:
        await identifier.stop()


async def test_an_oidc_customer_suspended_during_its_cache_miss_is_not_cached_as_active(
    db: Db, mono: FakeMonotonic, issuer: Issuer  # noqa: F811  (the fixture)
) -> None:
    from gateway.kyc import service
    from gateway.kyc.schemas import CustomerPatch

    await add_customer(db, "alice", tier="research", kyc_level="id_verified")
    gate = HeldAfterRead(db.sessions)
    verifier = OidcVerifier(issuer.url, AUDIENCE, "sub", clock=mono)
    identifier = GatewayIdentifier(gate, 30.0, oidc=verifier, clock=mono)  # type: ignore[arg-type]
    try:
        gate.armed = True
        first = asyncio.create_task(identifier.identify(issuer.token(issuer.keys[0]), None))
        await gate.read_done.wait()
        async with db.sessions() as session:
            patch = CustomerPatch.model_validate({"status": "suspended"})
            await service.update_customer(session, "alice", patch, ACTOR, None, NOW)
            await session.commit()
        await identifier.invalidate_customer("alice")
        gate.release.set()
        assert (await first).status == "active"
        mono.t += 1
        later = await identifier.identify(issuer.token(issuer.keys[0]), None)
        assert later.status == "suspended"
    finally:
        await identifier.stop()
