"""Admin-API authentication: bearer tokens with a role.

Roles are ``admin`` (passes every check), ``compliance`` and ``auditor``.
Tokens look like ``gat_<id>_<secret>`` and are stored hashed in
``admin_tokens`` (``gateway.identity.secrets``); ``GATEWAY_ADMIN_TOKEN``, when
set, is accepted verbatim as a bootstrap ``admin`` so a fresh install can mint
the first real tokens.

Usage in a router::

    @router.get("/decisions")
    async def list_decisions(actor: AdminActor = Depends(require_roles("auditor"))): ...

Missing or unknown token: 401. Known token without the role: 403. Both answer
``{"detail": ...}``. Failed attempts are rate limited per client IP (the IP
the ``Locator`` believes, so trusted-proxy rules apply): after
``FAILED_ATTEMPTS_PER_MINUTE`` failures the IP is locked out until the window
moves (``gateway.admin.lockout``; shared by all replicas through Redis when
``GATEWAY_REDIS_URL`` is set).

What a locked-out IP gets (chosen behaviour). The lockout exists to stop
guessing, but an IP is not a person: behind a load balancer that is not a
trusted proxy, every admin shares the attacker's address, and refusing
everything would let anyone lock every operator out with 20 bad requests.
So, from a locked IP:

- a credential this process already knows to be valid is authenticated as
  usual (role checks, revocation, 200/403): the bootstrap token, and admin
  tokens that have authenticated here before (``_Proven``, dropped when the
  token is revoked);
- anything else is 429, *without being checked*: no token-store read, no
  secret hashed, not counted. Every refused value costs the same work (one
  keyed SHA-256 and one dictionary probe of that digest), so timing says
  nothing about how close a guess came or whether a token id exists, and a
  flood of guesses puts no load on the database.

An attacker at a locked IP can still tell a *valid* credential from an
invalid one (200 vs 429): that is what admitting valid credentials means.
It is sound only because no credential can be guessed at any rate: admin
tokens carry 256 random bits (``gateway.identity.secrets``) and the bootstrap
token must have at least 32 characters (``Settings.admin_token``). A valid
token that this process has not yet seen (a new token, or the first use
after a restart) waits for the window like a guess: use the bootstrap token,
or fix ``GATEWAY_TRUSTED_PROXIES`` so that addresses mean people.

Timing without a lockout: the bootstrap token is compared as fixed-length
keyed digests (no length leak), and a token id that does not exist costs the
same hash as a wrong secret for one that does.

The authenticator lives at ``services.extras["admin_auth"]``; when the app did
not put one there, the first request builds it from the services (so wiring
is optional). Token lookups are cached in memory for
``settings.cache_ttl_seconds`` and verified against the cached hash on every
request; ``AdminAuthenticator.invalidate(token_id)`` drops one entry.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.lockout import FAILED_ATTEMPTS_PER_MINUTE, FailedAttempts, Proven
from gateway.identity import secrets as creds
from gateway.identity.bearer import parse_authorization
from gateway.identity.tables import AdminToken
from gateway.services import Services
from gateway.settings import Settings

Role = Literal["admin", "compliance", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "compliance", "auditor")
TOKEN_KIND = "gat"
EXTRAS_KEY = "admin_auth"


@dataclass(frozen=True, slots=True)
class AdminActor:
    """Who is making an admin call; ``token_id`` is None for the bootstrap token."""

    name: str
    role: str
    token_id: str | None


@dataclass(frozen=True, slots=True)
class _CachedToken:
    salt: str
    hash: str
    role: str
    name: str
    loaded_at: float


# Hashed for ids that do not exist, so that a miss costs what a wrong secret does.
_DUMMY_SALT = "00" * 16
_DUMMY_HASH = creds.hash_secret(_DUMMY_SALT, "")


class AdminAuthenticator:
    """Resolves admin bearer tokens to actors, with a TTL cache and a brute-force limiter."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bootstrap_token: str | None,
        cache_ttl_seconds: float,
        failed_per_minute: int = FAILED_ATTEMPTS_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        redis_url: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._bootstrap = bootstrap_token or None
        self._ttl = cache_ttl_seconds
        self._clock = clock
        self._cache: dict[str, _CachedToken | None] = {}
        self._cached_at: dict[str, float] = {}
        self._generation = 0
        """Bumped by ``invalidate``: a read begun before one is used, not cached."""
        self.lockout = FailedAttempts(failed_per_minute, redis_url)
        self._proven = Proven()
        self._bootstrap_digest = (
            None if self._bootstrap is None else self._proven.digest(self._bootstrap)
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: async_sessionmaker[AsyncSession]
    ) -> AdminAuthenticator:
        return cls(sessions, settings.admin_token, settings.cache_ttl_seconds,
                   redis_url=settings.redis_url)

    def invalidate(self, token_id: str) -> None:
        self._generation += 1
        self._cache.pop(token_id, None)
        self._cached_at.pop(token_id, None)
        self._proven.forget(token_id)

    async def blocked(self, client_ip: str) -> bool:
        return await self.lockout.blocked(client_ip)

    async def record_failure(self, client_ip: str) -> None:
        await self.lockout.record(client_ip)

    async def authenticate(self, raw: str) -> AdminActor | None:
        """The actor for a bearer value, or None when it is not a valid token.

        A token store that cannot be read raises its database error, which the
        admin API answers with 503 (``gateway.admin.routers``).
        """
        digest = self._proven.digest(raw)
        if self._bootstrap_digest is not None and hmac.compare_digest(
            digest, self._bootstrap_digest
        ):
            return AdminActor(name="bootstrap", role="admin", token_id=None)
        parsed = creds.parse(TOKEN_KIND, raw)
        if parsed is None:
            return None
        entry = await self._lookup(parsed.id)
        if entry is None:
            creds.verify_secret(_DUMMY_SALT, _DUMMY_HASH, parsed.secret)
            return None
        if not creds.verify_secret(entry.salt, entry.hash, parsed.secret):
            return None
        self._proven.add(digest, parsed.id)
        return AdminActor(name=entry.name, role=entry.role, token_id=parsed.id)

    async def authenticate_locked_out(self, raw: str) -> AdminActor | None:
        """``authenticate`` for a locked-out IP: only a credential proven valid
        in this process is checked; anything else is None unchecked (module doc)."""
        digest = self._proven.digest(raw)
        bootstrap = self._bootstrap_digest is not None and hmac.compare_digest(
            digest, self._bootstrap_digest
        )
        if not bootstrap and digest not in self._proven:
            return None
        return await self.authenticate(raw)

    async def _lookup(self, token_id: str) -> _CachedToken | None:
        now = self._clock()
        if token_id in self._cache and now - self._cached_at[token_id] < self._ttl:
            return self._cache[token_id]
        # A database that cannot be reached is the admin API's 503
        # (``gateway.admin.routers.store_unavailable``), as for every admin route.
        generation = self._generation
        async with self._sessions() as session:
            row = await session.get(AdminToken, token_id)
        entry = None
        if row is not None and row.revoked_at is None:
            entry = _CachedToken(row.secret_salt, row.secret_hash, row.role, row.name, now)
        if generation != self._generation:
            # A revocation was invalidated while this row was read: the row may
            # predate it. Used for this call, which began before; not cached.
            return entry
        # Negative answers are cached too (bounded by the TTL) so a flood of
        # guesses for one id does not become a flood of queries.
        self._cache[token_id] = entry
        self._cached_at[token_id] = now
        return entry


def admin_authenticator(services: Services) -> AdminAuthenticator:
    found = services.extras.get(EXTRAS_KEY)
    if isinstance(found, AdminAuthenticator):
        return found
    built = AdminAuthenticator.from_settings(services.settings, services.sessions)
    services.extras[EXTRAS_KEY] = built
    return built


def client_ip(request: Request, services: Services) -> str:
    peer = request.client.host if request.client else None
    # Test apps may carry a Services-like object without a locator: use the peer then.
    locator = getattr(services, "locator", None)
    if locator is None:
        return peer or "unknown"
    origin = locator.locate(peer, _forwarded_for(request))
    return origin.client_ip or peer or "unknown"


def _forwarded_for(request: Request) -> str | None:
    # Every X-Forwarded-For line, as one list (RFC 9110 section 5.3): the first
    # line alone may be the client's own, ahead of the one its proxy added.
    lines = request.headers.getlist("x-forwarded-for")
    return ", ".join(lines) if lines else None


def require_roles(*roles: str) -> Callable[[Request], Awaitable[AdminActor]]:
    """A FastAPI dependency admitting tokens whose role is one of ``roles`` (or admin)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown admin roles: {sorted(unknown)}")
    allowed = frozenset(roles) | {"admin"}

    async def dependency(request: Request) -> AdminActor:
        services: Services = request.app.state.services
        auth = admin_authenticator(services)
        ip = client_ip(request, services)
        # The proxied API's parser too (gateway.identity.bearer): one reading of the header.
        raw, problem = parse_authorization(request.headers.get("authorization"))
        if await auth.blocked(ip):
            # Valid credentials still work; guesses are refused unchecked (module doc).
            actor = await auth.authenticate_locked_out(raw) if raw is not None else None
            if actor is None:
                raise HTTPException(
                    429, "too many failed admin authentication attempts", {"retry-after": "60"}
                )
        else:
            actor = await auth.authenticate(raw) if raw is not None else None
            if actor is None:
                await auth.record_failure(ip)
                raise HTTPException(
                    401, problem or "missing or invalid admin token", {"www-authenticate": "Bearer"}
                )
        if actor.role not in allowed:
            raise HTTPException(403, f"role {actor.role!r} may not use this route")
        return actor

    return dependency


async def create_admin_token(
    session: AsyncSession, role: str, name: str, now: datetime | None = None
) -> tuple[AdminToken, str]:
    """Add a new token row to ``session`` (caller commits); returns it and the clear token."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    minted = creds.mint(TOKEN_KIND)
    row = AdminToken(
        id=minted.id,
        role=role,
        secret_salt=minted.salt,
        secret_hash=minted.hash,
        name=name,
        created_at=now or datetime.now(UTC),
    )
    session.add(row)
    return row, minted.clear


async def find_token(session: AsyncSession, token_id: str) -> AdminToken | None:
    return (await session.execute(select(AdminToken).where(AdminToken.id == token_id))).scalar()
