"""OIDC bearer tokens: JWTs from ``settings.oidc_issuer``, keys from its JWKS.

The JWKS URL comes from OpenID discovery
(``<issuer>/.well-known/openid-configuration``, whose ``issuer`` must match).
Keys are cached for ``jwks_ttl_seconds`` (``GATEWAY_OIDC_JWKS_TTL_SECONDS``),
or for the JWKS response's ``Cache-Control: max-age`` when that is shorter:
the lifetime is how long a key the issuer withdrew (compromised) still
verifies tokens. ``no-store``/``no-cache`` keep the set ``min_refresh_seconds``.
An expired set is refreshed in a background task; a token waits for it at most
``_REFRESH_WAIT_S``, so a hanging issuer cannot hold up tokens whose ``kid`` is
known. A token signed
with a ``kid`` we do not hold triggers one early refresh (key rotation), but at
most one per ``min_refresh_seconds`` so a stream of junk kids cannot make us
hammer the issuer. Checked: signature (asymmetric algorithms only: never
``none`` or HMAC, which would let a JWKS-published value sign), ``iss``,
``aud``, ``exp`` (required), ``nbf``. The customer id is the
``customer_claim`` claim; ``exp`` plus the leeway is when the token stops
verifying, and a stream on it ends then (``VerifiedToken``).

Reading a JWKS document (which keys are usable) and a ``Cache-Control`` value
is ``jwks.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from gateway.identity.jwks import cache_max_age, has_kid, usable_keys
from gateway.ops.background import cancel_and_wait
from gateway.stages import AuthenticationFailed, IdentityStoreUnavailable

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
LEEWAY_SECONDS = 30
MAX_TOKEN_CHARS = 16 * 1024
"""Several times any real ID or access token (a few KB with many claims): decoding
base64 and JSON of any size an unauthenticated caller sends is work it should not
get to order, and "malformed" would misname what is wrong."""
_LATEST_S = datetime(9999, 1, 1, tzinfo=UTC).timestamp()


def looks_like_jwt(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 3 and all(parts[:2]) and value.startswith("ey")


_RETRY_WITHOUT_KEYS_S = 1.0
"""How often a verifier that never got the issuer's keys tries again."""
_UNCACHEABLE_FLOOR_S = 5.0
"""The lifetime of a set the issuer says not to cache, when no refresh interval is set:
refetching it for every token would put the issuer on the hot path."""
_REFRESH_WAIT_S = 0.5
"""How long a token waits for the refresh of an expired key set before the old set
is used: long enough for a responsive issuer, so a key the refresh drops is refused
from the first token after expiry; short, so a hanging issuer costs little."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    customer_id: str
    stops_verifying_at: datetime
    """The token's ``exp`` plus ``LEEWAY_SECONDS``: from then on this verifier
    refuses it, and a stream admitted on it ends (``gateway.proxy.cut``)."""


class OidcVerifier:
    looks_like_jwt = staticmethod(looks_like_jwt)

    def __init__(
        self,
        issuer: str,
        audience: str,
        customer_claim: str = "sub",
        http: httpx.AsyncClient | None = None,
        jwks_ttl_seconds: float = 300.0,
        min_refresh_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.customer_claim = customer_claim
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        self._owns_http = http is None
        self._ttl = jwks_ttl_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._wall = wall_clock
        self._keys: KeySet | None = None
        self._expires_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None
        self._skipped_kids: set[str] = set()
        """The unusable JWKS entries already logged (an issuer republishes them every fetch)."""
        self.fetch_count = 0

    async def close(self) -> None:
        if self._refresh is not None:
            await cancel_and_wait(self._refresh)
        if self._owns_http:
            await self._http.aclose()

    async def _fetch(self) -> tuple[KeySet, float]:
        """The issuer's keys and how long they may be kept."""
        base = self.issuer.rstrip("/")
        try:
            meta = await self._http.get(f"{base}/.well-known/openid-configuration")
            meta.raise_for_status()
            doc = meta.json()
            if doc.get("issuer") != self.issuer:
                raise IdentityStoreUnavailable(f"discovery issuer {doc.get('issuer')!r} mismatch")
            jwks = await self._http.get(str(doc["jwks_uri"]))
            jwks.raise_for_status()
            keys = usable_keys(jwks.json(), self.issuer, self._skipped_kids)
        except (httpx.HTTPError, ValueError, KeyError, JoseError) as exc:
            # The type too: some (a timeout) have no message at all.
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.error("OIDC JWKS fetch from %s failed: %s", self.issuer, reason)
            raise IdentityStoreUnavailable(f"OIDC issuer unreachable: {reason}") from exc
        self.fetch_count += 1
        return keys, self._lifetime(jwks.headers.get("cache-control"))

    def _floor(self) -> float:
        """The shortest a key set is kept when the issuer says less, and how long
        after a failed refresh the next one is tried."""
        return self._min_refresh if self._min_refresh > 0 else _UNCACHEABLE_FLOOR_S

    def _lifetime(self, cache_control: str | None) -> float:
        """The TTL setting, shortened (never lengthened) by the issuer's ``Cache-Control``."""
        max_age = cache_max_age(cache_control)
        if max_age is None:
            return self._ttl
        return min(self._ttl, max(max_age, self._floor()))

    async def _keyset(self, want_kid: str | None) -> KeySet:
        """The issuer's keys: cached, refetched when expired or for an unknown ``kid``.

        A token whose ``kid`` is cached never waits on the lock; when the set
        has expired it waits at most ``_REFRESH_WAIT_S`` for its refresh (in a
        task of its own), then goes on with the old set.
        Refreshes for unknown ``kid``s, failed ones included, are rate-limited
        (every ``min_refresh`` seconds, or every second while no key set was
        ever fetched): unauthenticated tokens with made-up ``kid``s must
        neither hammer a failing issuer nor queue valid tokens behind its
        timeouts. A set whose refresh fails stays in use, retried every
        ``_floor()`` (the issuer's outage should not take JWT traffic down with
        it); a refresh that succeeds replaces the set whole, so a key it no
        longer lists stops verifying at once.
        """
        keys = self._keys
        now = self._clock()
        if keys is not None and has_kid(keys, want_kid):
            if not self._expired(now):
                return keys
            await asyncio.wait({self._refresh_in_background()}, timeout=_REFRESH_WAIT_S)
            return self._keys or keys
        if not self._attempt_due(now):
            if keys is None:
                raise IdentityStoreUnavailable("OIDC issuer unreachable (retrying shortly)")
            return keys  # an unknown kid stays unknown until the next attempt is due
        await self._refresh_if(self._attempt_due)
        if self._keys is None:
            raise IdentityStoreUnavailable("OIDC issuer unreachable (retrying shortly)")
        return self._keys

    def _refresh_in_background(self) -> asyncio.Task[None]:
        """The refresh in flight, or a new one: a task, so that a request that stops
        waiting for it (or is cancelled) does not cancel it."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self._refresh_quietly(), name="oidc-jwks-refresh")
        return self._refresh

    async def _refresh_quietly(self) -> None:
        # A failure is logged by _fetch and leaves the set in use: nothing to raise to.
        with contextlib.suppress(IdentityStoreUnavailable):
            await self._refresh_if(self._expired)

    async def _refresh_if(self, due: Callable[[float], bool]) -> None:
        """One fetch at a time (single flight); those who queued behind it see its
        result, and fetch again only if still ``due``."""
        async with self._lock:
            now = self._clock()
            if not due(now):
                return
            self._attempted_at = now
            try:
                self._keys, lifetime = await self._fetch()
            except IdentityStoreUnavailable:
                if self._keys is None:
                    raise
                log.warning("OIDC key refresh failed; keeping the keys fetched before")
                lifetime = self._floor()
            self._expires_at = now + lifetime

    def _expired(self, now: float) -> bool:
        return now >= self._expires_at

    def _attempt_due(self, now: float) -> bool:
        wait = self._min_refresh if self._keys is not None else _RETRY_WITHOUT_KEYS_S
        return now - self._attempted_at >= wait

    async def verify(self, token: str) -> VerifiedToken:
        """The customer the token names, and until when; AuthenticationFailed when
        it does not verify."""
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthenticationFailed(
                f"token too large ({len(token)} characters; at most {MAX_TOKEN_CHARS})"
            )
        try:
            header = extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeEncodeError) as exc:
            raise AuthenticationFailed("malformed token") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthenticationFailed(f"token algorithm {alg!r} not accepted")
        kid = header.get("kid")
        keys = await self._keyset(kid)
        if not has_kid(keys, kid):
            raise AuthenticationFailed("token signed with an unknown key")
        try:
            decoded = jwt.decode(token, keys, algorithms=[alg])
            registry = jwt.JWTClaimsRegistry(
                now=int(self._wall()),
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise AuthenticationFailed(f"token rejected: {exc}") from exc
        # exp is a finite number here (the registry refuses any other), but may
        # lie past the last instant a datetime holds: clamped, not a 500.
        stops = min(decoded.claims["exp"] + LEEWAY_SECONDS, _LATEST_S)
        return VerifiedToken(_customer_id(decoded.claims, self.customer_claim),
                             datetime.fromtimestamp(stops, UTC))  # fmt: skip


def _customer_id(claims: dict[str, Any], claim: str) -> str:
    value = claims.get(claim)
    if not isinstance(value, str) or not value:
        raise AuthenticationFailed(f"token has no {claim!r} claim")
    return value
