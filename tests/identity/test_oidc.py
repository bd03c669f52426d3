"""OIDC against a real local issuer: discovery + JWKS served over loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from gateway.identity.identifier import GatewayIdentifier
from gateway.identity.oidc import LEEWAY_SECONDS, OidcVerifier
from gateway.stages import AuthenticationFailed
from tests.identity.conftest import Db, FakeMonotonic, add_customer

AUDIENCE = "gateway-test"


@dataclass
class Issuer:
    url: str
    keys: list[RSAKey] = field(default_factory=list)
    jwks_hits: int = 0
    discovery_hits: int = 0
    mode: str = "up"  # "fail": discovery answers 500; "hang": it never answers
    cache_control: str | None = None  # the JWKS response's Cache-Control, when set
    extra: list[Any] = field(default_factory=list)  # JWKS entries published after the keys

    def token(self, key: RSAKey, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
        body.update(claims)
        return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)


def rsa(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid})


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    state = Issuer(url="")

    async def discovery(_: web.Request) -> web.Response:
        state.discovery_hits += 1
        if state.mode == "fail":
            return web.Response(status=500)
        if state.mode == "hang":
            await asyncio.sleep(6)  # past the verifier's 5 s HTTP timeout
        return web.json_response({"issuer": state.url, "jwks_uri": f"{state.url}/jwks"})

    async def jwks(_: web.Request) -> web.Response:
        state.jwks_hits += 1
        headers = {} if state.cache_control is None else {"cache-control": state.cache_control}
        body = {"keys": [k.as_dict(private=False) for k in state.keys] + state.extra}
        return web.json_response(body, headers=headers)

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    state.keys.append(rsa("k1"))
    yield state
    await runner.cleanup()


@pytest.fixture
async def oidc_identifier(
    db: Db, issuer: Issuer, mono: FakeMonotonic
) -> AsyncIterator[GatewayIdentifier]:
    verifier = OidcVerifier(issuer.url, AUDIENCE, "sub", clock=mono, min_refresh_seconds=60)
    ident = GatewayIdentifier(db.sessions, 30.0, oidc=verifier, clock=mono)
    await add_customer(db, "alice", tier="research", kyc_level="id_verified")
    yield ident
    await ident.stop()


async def test_valid_token(oidc_identifier: GatewayIdentifier, issuer: Issuer) -> None:
    p = await oidc_identifier.identify(issuer.token(issuer.keys[0]), None)
    assert p.customer_id == "alice" and p.auth_method == "oidc" and p.key_id is None
    assert p.tier == "research"
    await oidc_identifier.identify(issuer.token(issuer.keys[0]), None)
    assert issuer.jwks_hits == 1  # JWKS cached
    assert oidc_identifier.db_reads == 1  # customer cached


async def test_each_token_carries_its_own_end_on_the_cached_customer(
    oidc_identifier: GatewayIdentifier, issuer: Issuer
) -> None:
    # The customer is cached once; a stream must end when its own token stops
    # verifying (gateway.proxy.cut), so each request's principal says when.
    now = int(time.time())
    soon = await oidc_identifier.identify(issuer.token(issuer.keys[0], exp=now + 60), None)
    later = await oidc_identifier.identify(issuer.token(issuer.keys[0], exp=now + 600), None)
    assert soon.token_expires_at is not None and later.token_expires_at is not None
    assert soon.token_expires_at.timestamp() == now + 60 + LEEWAY_SECONDS
    assert later.token_expires_at.timestamp() == now + 600 + LEEWAY_SECONDS
    assert oidc_identifier.db_reads == 1  # still one read for the customer
    # An exp past what a datetime holds is no 500: it ends when nothing will.
    distant = await oidc_identifier.identify(issuer.token(issuer.keys[0], exp=10**15), None)
    assert distant.token_expires_at is not None and distant.token_expires_at.year >= 9999


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "someone-else"}, "aud"),
        ({"iss": "http://evil.example"}, "iss"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
        ({"sub": "nobody"}, "unknown customer"),
    ],
)
async def test_rejected_tokens(
    oidc_identifier: GatewayIdentifier, issuer: Issuer, claims: dict[str, Any], message: str
) -> None:
    with pytest.raises(AuthenticationFailed, match=message):
        await oidc_identifier.identify(issuer.token(issuer.keys[0], **claims), None)


async def test_missing_exp_and_foreign_signature(
    oidc_identifier: GatewayIdentifier, issuer: Issuer
) -> None:
    now = int(time.time())
    no_exp = jwt.encode(
        {"alg": "RS256", "kid": "k1"}, {"iss": issuer.url, "aud": AUDIENCE, "sub": "alice"},
        issuer.keys[0],
    )  # fmt: skip
    with pytest.raises(AuthenticationFailed):
        await oidc_identifier.identify(no_exp, None)
    forged_key = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, other key
    forged = issuer.token(forged_key, exp=now + 60)
    with pytest.raises(AuthenticationFailed):
        await oidc_identifier.identify(forged, None)


async def test_rotated_key_picked_up_once(
    oidc_identifier: GatewayIdentifier, issuer: Issuer, mono: FakeMonotonic
) -> None:
    await oidc_identifier.identify(issuer.token(issuer.keys[0]), None)
    assert issuer.jwks_hits == 1
    mono.t += 61  # past the refresh rate limit, well within the JWKS TTL
    issuer.keys = [rsa("k2")]
    p = await oidc_identifier.identify(issuer.token(issuer.keys[0]), None)
    assert p.customer_id == "alice" and issuer.jwks_hits == 2
    # A second unknown kid right away does not trigger another fetch (rate limited).
    with pytest.raises(AuthenticationFailed, match="unknown key"):
        await oidc_identifier.identify(issuer.token(rsa("k3")), None)
    assert issuer.jwks_hits == 2


async def test_gateway_keys_still_work_with_oidc(
    oidc_identifier: GatewayIdentifier, issuer: Issuer
) -> None:
    with pytest.raises(AuthenticationFailed, match="unknown gateway key"):
        await oidc_identifier.identify("gk_abc_def", None)
    assert issuer.jwks_hits == 0


async def test_a_failing_issuer_is_asked_at_most_once_per_refresh_interval(
    oidc_identifier: GatewayIdentifier, issuer: Issuer, mono: FakeMonotonic
) -> None:
    # Made-up kids retried the fetch on every request while the issuer failed
    # (only successful fetches were rate-limited), and answered 503.
    await oidc_identifier.identify(issuer.token(issuer.keys[0]), None)
    asked = issuer.discovery_hits
    issuer.mode = "fail"
    mono.t += 61
    for _ in range(5):
        with pytest.raises(AuthenticationFailed, match="unknown key"):
            await oidc_identifier.identify(issuer.token(rsa("junk")), None)
    assert issuer.discovery_hits - asked == 1
    # The cached key keeps working through the outage.
    p = await oidc_identifier.identify(issuer.token(issuer.keys[0], sub="alice"), None)
    assert p.customer_id == "alice"


async def test_a_cached_key_does_not_wait_for_a_hanging_issuer(
    db: Db, issuer: Issuer, mono: FakeMonotonic
) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE, "sub", clock=mono, min_refresh_seconds=60)
    await add_customer(db, "alice", tier="research", kyc_level="id_verified")
    await add_customer(db, "bob", tier="research", kyc_level="id_verified")
    ident = GatewayIdentifier(db.sessions, 30.0, oidc=verifier, clock=mono)
    try:
        await ident.identify(issuer.token(issuer.keys[0]), None)
        issuer.mode = "hang"
        mono.t += 61
        junk = asyncio.create_task(ident.identify(issuer.token(rsa("junk")), None))
        await asyncio.sleep(0.2)  # the junk token's fetch is now hanging
        # A valid token whose key is cached waited behind that fetch (5 s per
        # junk token in the queue); it must not depend on the issuer at all.
        valid = await asyncio.wait_for(ident.identify(issuer.token(issuer.keys[0], sub="bob"),
                                                      None), timeout=1.0)  # fmt: skip
        assert valid.customer_id == "bob"
        junk.cancel()
        with contextlib.suppress(asyncio.CancelledError, AuthenticationFailed):
            await junk
    finally:
        await ident.stop()


@pytest.mark.parametrize(
    ("cache_control", "ttl", "refreshed_after"),
    [
        (None, 300, 300),  # the setting
        (None, 30, 30),  # even below the refresh interval for unknown kids
        ("public, max-age=90", 300, 90),  # a shorter max-age is honoured,
        ("max-age=0", 300, 60),  # down to the refresh interval (min_refresh_seconds=60)
        ("max-age=86400", 300, 300),  # a longer one is not: the setting is the bound
        ("no-store", 300, 60),  # not cacheable: refetched as often as an unknown kid may
        ("no-cache, max-age=120", 300, 60),
        ("max-age=junk", 300, 300),
    ],
)
async def test_a_withdrawn_key_stops_verifying_once_the_key_set_expires(
    db: Db, issuer: Issuer, mono: FakeMonotonic,
    cache_control: str | None, ttl: float, refreshed_after: float,
) -> None:  # fmt: skip
    # The set was kept for a hard-coded hour whatever the issuer said: a key it
    # withdrew (compromised) went on verifying tokens for that long.
    verifier = OidcVerifier(issuer.url, AUDIENCE, "sub", clock=mono, jwks_ttl_seconds=ttl,
                            min_refresh_seconds=60)  # fmt: skip
    ident = GatewayIdentifier(db.sessions, 30.0, oidc=verifier, clock=mono)
    await add_customer(db, "alice", tier="research", kyc_level="id_verified")
    try:
        issuer.cache_control = cache_control
        withdrawn, kept = issuer.keys[0], rsa("k2")
        issuer.keys.append(kept)
        old, new = issuer.token(withdrawn), issuer.token(kept)
        await ident.identify(old, None)
        issuer.keys = [kept]
        mono.t += refreshed_after - 1
        await ident.identify(old, None)  # still within the key set's lifetime
        await asyncio.sleep(0.05)
        assert issuer.jwks_hits == 1
        mono.t += 2
        # The first token after expiry waits for the refresh, which drops the key.
        with pytest.raises(AuthenticationFailed, match="unknown key"):
            await ident.identify(old, None)
        assert issuer.jwks_hits == 2
        assert (await ident.identify(new, None)).customer_id == "alice"
    finally:
        await ident.stop()


async def test_an_expired_key_set_is_refreshed_without_holding_up_requests(
    db: Db, issuer: Issuer, mono: FakeMonotonic
) -> None:
    # Refreshing an expired set on the request path made every token wait for
    # the issuer (up to the 5 s HTTP timeout while it hangs), every TTL: a token
    # waits half a second for it at most.
    verifier = OidcVerifier(issuer.url, AUDIENCE, "sub", clock=mono, jwks_ttl_seconds=300,
                            min_refresh_seconds=60)  # fmt: skip
    ident = GatewayIdentifier(db.sessions, 30.0, oidc=verifier, clock=mono)
    await add_customer(db, "alice", tier="research", kyc_level="id_verified")
    try:
        token = issuer.token(issuer.keys[0])
        await ident.identify(token, None)
        issuer.mode = "hang"
        mono.t += 301
        for _ in range(3):
            valid = await asyncio.wait_for(ident.identify(token, None), timeout=0.8)
            assert valid.customer_id == "alice"
        assert issuer.discovery_hits == 2  # one refresh in flight, not one per request
    finally:
        await ident.stop()


async def test_an_expired_key_set_whose_refresh_fails_is_retried_at_the_refresh_interval(
    oidc_identifier: GatewayIdentifier, issuer: Issuer, mono: FakeMonotonic
) -> None:
    token = issuer.token(issuer.keys[0])
    await oidc_identifier.identify(token, None)
    issuer.mode = "fail"
    mono.t += 301  # past the key set's lifetime (the 300 s default)
    for _ in range(5):  # the set stays in use through the outage; one attempt
        assert (await oidc_identifier.identify(token, None)).customer_id == "alice"
        await asyncio.sleep(0.02)
    assert issuer.discovery_hits == 2
    mono.t += 61  # min_refresh_seconds later: one more
    for _ in range(3):
        await oidc_identifier.identify(token, None)
        await asyncio.sleep(0.02)
    assert issuer.discovery_hits == 3


def unusable_entries() -> list[Any]:
    """JWKS entries no verifier can use, each as issuers have been seen to publish them."""
    no_modulus = rsa("no-n").as_dict(private=False)
    del no_modulus["n"]
    off_curve = ECKey.generate_key("P-256", parameters={"kid": "off-curve"}).as_dict(private=False)
    off_curve["y"] = off_curve["x"]  # (x, x) is not a point of P-256
    return [
        no_modulus,
        off_curve,
        {"kty": "oct", "kid": "shared", "k": "A" * 43},  # HMAC: never a signer we accept
        {"kty": "AKP", "alg": "ML-DSA-44", "kid": "pq1", "pub": "AAAA"},  # a type not known here
        "not-a-key",
    ]


def skipped_kids(caplog: pytest.LogCaptureFixture) -> list[str]:
    said = [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()]
    return [kid for kid in ("no-n", "off-curve", "shared") for line in said if repr(kid) in line]


@pytest.fixture
def oidc_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="gateway.identity.oidc"):
        yield caplog


async def test_one_bad_jwks_entry_does_not_take_the_others_down(
    oidc_identifier: GatewayIdentifier, issuer: Issuer, mono: FakeMonotonic,
    oidc_log: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    # The whole set was refused when any entry failed to import: at start every
    # JWT was a 503; later a new signing key was never picked up.
    issuer.extra = unusable_entries()
    p = await oidc_identifier.identify(issuer.token(issuer.keys[0]), None)
    assert p.customer_id == "alice"
    assert sorted(skipped_kids(oidc_log)) == ["no-n", "off-curve", "shared"]
    mono.t += 61
    rotated = rsa("k2")
    issuer.keys.append(rotated)
    p = await oidc_identifier.identify(issuer.token(rotated), None)
    assert p.customer_id == "alice" and issuer.jwks_hits == 2
    # Each unusable kid is said once, not at every refresh.
    assert sorted(skipped_kids(oidc_log)) == ["no-n", "off-curve", "shared"]
    with pytest.raises(AuthenticationFailed, match="unknown key"):
        await oidc_identifier.identify(issuer.token(rsa("no-n")), None)


async def test_a_key_set_with_no_usable_key_is_a_failed_fetch(
    oidc_identifier: GatewayIdentifier, issuer: Issuer, mono: FakeMonotonic,
    oidc_log: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from gateway.stages import IdentityStoreUnavailable

    good = issuer.keys
    issuer.keys, issuer.extra = [], unusable_entries()
    with pytest.raises(IdentityStoreUnavailable, match="no usable key"):
        await oidc_identifier.identify(issuer.token(good[0]), None)
    # Once the issuer publishes a usable key again, it is used.
    issuer.keys = good
    mono.t += 2
    assert (await oidc_identifier.identify(issuer.token(good[0]), None)).customer_id == "alice"


async def test_a_failed_fetch_is_logged_with_its_exception_type(
    db: Db, issuer: Issuer, mono: FakeMonotonic, oidc_log: pytest.LogCaptureFixture
) -> None:
    # A timeout's str() is empty: the line read "OIDC JWKS fetch ... failed: ".
    import httpx

    from gateway.stages import IdentityStoreUnavailable

    http = httpx.AsyncClient(timeout=httpx.Timeout(0.5))
    verifier = OidcVerifier(issuer.url, AUDIENCE, "sub", http=http, clock=mono)
    issuer.mode = "hang"
    try:
        with pytest.raises(IdentityStoreUnavailable, match=r"unreachable: \w+Timeout"):
            await verifier.verify(issuer.token(issuer.keys[0]))
    finally:
        await verifier.close()
        await http.aclose()
    failed = [r.getMessage() for r in oidc_log.records if "failed" in r.getMessage()]
    assert failed and all(re.search(r"failed: \w+Timeout", line) for line in failed), failed


async def test_an_oversized_token_is_refused_as_too_large_before_it_is_parsed(
    oidc_identifier: GatewayIdentifier, issuer: Issuer
) -> None:
    # A 200 KB JWT was parsed, then refused as "malformed token".
    fits = issuer.token(issuer.keys[0], padding="x" * 11_000)
    assert 14_000 < len(fits) <= 16 * 1024
    assert (await oidc_identifier.identify(fits, None)).customer_id == "alice"
    hits = issuer.discovery_hits
    for size in (17_000, 200_000):
        huge = issuer.token(issuer.keys[0], padding="x" * size)
        with pytest.raises(AuthenticationFailed, match="too large") as caught:
            await oidc_identifier.identify(huge, None)
        assert "16384" in str(caught.value)
    assert issuer.discovery_hits == hits
