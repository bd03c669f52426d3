"""OIDC bearer tokens: JWTs from ``settings.oidc_issuer``, keys from its JWKS.

The JWKS URL comes from OpenID discovery
(``<issuer>/.well-known/openid-configuration``, whose ``issuer`` must match).
Keys are cached for ``jwks_ttl_seconds``; a token signed with a ``kid`` we do
not hold triggers one early refresh (key rotation), but at most one per
``min_refresh_seconds`` so a stream of junk kids cannot make us hammer the
issuer. Checked: signature (asymmetric algorithms only: never ``none`` or
HMAC, which would let a JWKS-published value sign), ``iss``, ``aud``, ``exp``
(required), ``nbf``. The customer id is the ``customer_claim`` claim.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from gateway.stages import AuthenticationFailed, IdentityStoreUnavailable

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
LEEWAY_SECONDS = 30


def looks_like_jwt(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 3 and all(parts[:2]) and value.startswith("ey")


_RETRY_WITHOUT_KEYS_S = 1.0
"""How often a verifier that never got the issuer's keys tries again."""


class OidcVerifier:
    looks_like_jwt = staticmethod(looks_like_jwt)

    def __init__(
        self,
        issuer: str,
        audience: str,
        customer_claim: str = "sub",
        http: httpx.AsyncClient | None = None,
        jwks_ttl_seconds: float = 3600.0,
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
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _fetch(self) -> KeySet:
        base = self.issuer.rstrip("/")
        try:
            meta = await self._http.get(f"{base}/.well-known/openid-configuration")
            meta.raise_for_status()
            doc = meta.json()
            if doc.get("issuer") != self.issuer:
                raise IdentityStoreUnavailable(f"discovery issuer {doc.get('issuer')!r} mismatch")
            jwks = await self._http.get(str(doc["jwks_uri"]))
            jwks.raise_for_status()
            keys = KeySet.import_key_set(jwks.json())
        except (httpx.HTTPError, ValueError, KeyError, JoseError) as exc:
            log.error("OIDC JWKS fetch from %s failed: %s", self.issuer, exc)
            raise IdentityStoreUnavailable(f"OIDC issuer unreachable: {exc}") from exc
        self.fetch_count += 1
        return keys

    async def _keyset(self, want_kid: str | None) -> KeySet:
        """The issuer's keys: cached, refetched when stale or for an unknown ``kid``.

        Fetch *attempts*, failed ones included, are rate-limited (every
        ``min_refresh`` seconds, or every second while no key set was ever
        fetched), and a token whose ``kid`` is cached never waits on the lock:
        unauthenticated tokens with made-up ``kid``s must neither hammer a
        failing issuer nor queue valid tokens behind its timeouts. A stale set
        whose refresh fails stays in use (keys rarely vanish; the issuer's
        outage should not take JWT traffic down with it).
        """
        keys = self._keys
        now = self._clock()
        fresh = keys is not None and now - self._fetched_at < self._ttl
        if fresh and keys is not None and _has_kid(keys, want_kid):
            return keys
        if not self._attempt_due(now):
            if keys is None:
                raise IdentityStoreUnavailable("OIDC issuer unreachable (retrying shortly)")
            return keys  # an unknown kid stays unknown until the next attempt is due
        async with self._lock:
            now = self._clock()
            if self._attempt_due(now):
                self._attempted_at = now
                try:
                    self._keys = await self._fetch()
                    self._fetched_at = now
                except IdentityStoreUnavailable:
                    if self._keys is None:
                        raise
                    log.warning("OIDC key refresh failed; keeping the keys fetched before")
            if self._keys is None:
                raise IdentityStoreUnavailable("OIDC issuer unreachable (retrying shortly)")
            return self._keys

    def _attempt_due(self, now: float) -> bool:
        wait = self._min_refresh if self._keys is not None else _RETRY_WITHOUT_KEYS_S
        return now - self._attempted_at >= wait

    async def verify(self, token: str) -> str:
        """The customer id the token names; AuthenticationFailed when it does not verify."""
        try:
            header = extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeEncodeError) as exc:
            raise AuthenticationFailed("malformed token") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthenticationFailed(f"token algorithm {alg!r} not accepted")
        kid = header.get("kid")
        keys = await self._keyset(kid)
        if not _has_kid(keys, kid):
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
        return _customer_id(decoded.claims, self.customer_claim)


def _has_kid(keys: KeySet, kid: str | None) -> bool:
    if kid is None:
        return len(keys.keys) == 1
    return any(k.kid == kid for k in keys.keys)


def _customer_id(claims: dict[str, Any], claim: str) -> str:
    value = claims.get(claim)
    if not isinstance(value, str) or not value:
        raise AuthenticationFailed(f"token has no {claim!r} claim")
    return value
