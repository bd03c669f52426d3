"""An admin token revoked while its cache miss is read is not cached as valid.

The authenticator reads a token's row on a miss and caches it for
``cache_ttl_seconds``; ``DELETE /tokens/{id}`` commits the revocation, then
invalidates. A read in flight across both (begun before the commit, done
after the invalidation) cached the unrevoked row, and the revoked token kept
its role for the whole TTL (30 s by default). The same race as the proxied
API's key cache (``tests/identity/test_invalidation_race.py``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from gateway.admin.auth import AdminAuthenticator
from gateway.admin.tokens import revoke_admin_token
from gateway.identity import secrets as creds
from tests.identity.conftest import ACTOR, FakeMonotonic
from tests.identity.test_invalidation_race import HeldAfterRead
from tests.support.identity_app import admin_tokens, make_db, make_settings


async def test_a_token_revoked_during_its_cache_miss_is_refused_after(tmp_path: Path) -> None:
    engine, sessions = await make_db(make_settings(tmp_path))
    try:
        clear = (await admin_tokens(sessions, ("compliance",)))["compliance"]
        parsed = creds.parse("gat", clear)
        assert parsed is not None
        gate = HeldAfterRead(sessions)
        mono = FakeMonotonic()
        auth = AdminAuthenticator(gate, None, 30.0, clock=mono)  # type: ignore[arg-type]
        gate.armed = True
        first = asyncio.create_task(auth.authenticate(clear))
        await gate.read_done.wait()  # the row is read: not yet revoked
        async with sessions() as session:
            await revoke_admin_token(session, parsed.id, ACTOR, datetime.now(UTC))
            await session.commit()
        auth.invalidate(parsed.id)  # what DELETE /tokens/{id} does after its commit
        gate.release.set()
        assert await first is not None  # it began before the revocation
        mono.t += 1
        assert await auth.authenticate(clear) is None
    finally:
        await engine.dispose()
