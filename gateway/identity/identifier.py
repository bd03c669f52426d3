"""The identify stage: a gateway key or an OIDC token becomes a ``Principal``.

Cache: key id -> (salt, hash, principal), filled on a miss from the customer
store and kept for ``settings.cache_ttl_seconds`` (the staleness bound across
replicas). A cached key never touches the database; its secret is still
verified against the cached hash on every request (constant time), and its
expiry against the wall clock. Unknown key ids (and customers) are
remembered as misses for at most ``NEGATIVE_TTL_SECONDS``, so guessing floods
do not become query floods while a new key works at once (creation
invalidates its id anyway); the misses are held apart from known entries and
bounded in number (``gateway.identity.misses``), since their ids are whatever
an unauthenticated caller sent.

Invalidation: ``invalidate_customer(id)`` / ``invalidate_key(id)`` drop entries
here and then call every ``on_invalidate`` hook with ``(kind, id)`` so another
component can broadcast to other replicas; a broadcast received from elsewhere
should call the same methods with ``propagate=False``. Every invalidation,
local or from a peer (bus, change feed), also calls each ``on_change``
listener synchronously: the streams in flight for that customer or key are
decided again (``gateway.proxy.live_streams``).

Concurrent misses on one key share one database read (single flight).

A read that an invalidation overtook (it began before, it ends after) is
used by the requests already waiting on it, which began before the change,
but not cached, and requests arriving after the invalidation start a read of
their own: the row it read may predate the commit the invalidation follows,
and caching it kept a revoked key, or a suspended customer, served for the
whole TTL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.identity import secrets as creds
from gateway.identity.invalidation import ChangeListener, InvalidationHook, InvalidationKind
from gateway.identity.keys import KEY_KIND, LastUsedTracker
from gateway.identity.misses import CAPACITY as MISSES_CAPACITY
from gateway.identity.misses import Misses
from gateway.identity.principal import Principal
from gateway.identity.screening_summary import ListInForce
from gateway.identity.store import KeyRecord, load_customer, load_key
from gateway.stages import AuthenticationFailed, IdentityStoreUnavailable

if TYPE_CHECKING:
    from gateway.identity.oidc import OidcVerifier

log = logging.getLogger(__name__)

NEGATIVE_TTL_SECONDS = 5.0
LAST_USED_FLUSH_SECONDS = 10.0



T = TypeVar("T")


@dataclass(slots=True)
class _Entry(Generic[T]):
    value: T
    loaded_at: float


class GatewayIdentifier:
    """Implements ``gateway.stages.Identifier``."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache_ttl_seconds: float,
        oidc: OidcVerifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        last_used_flush_seconds: float = LAST_USED_FLUSH_SECONDS,
        misses_capacity: int = MISSES_CAPACITY,
    ) -> None:
        self._sessions = sessions
        self._ttl = cache_ttl_seconds
        neg_ttl = min(NEGATIVE_TTL_SECONDS, cache_ttl_seconds)
        self.oidc = oidc
        self._clock = clock
        self._now = wall_clock
        self._keys: dict[str, _Entry[KeyRecord]] = {}
        self._customers: dict[str, _Entry[Principal]] = {}
        self.key_misses = Misses(neg_ttl, misses_capacity)
        self.customer_misses = Misses(neg_ttl, misses_capacity)
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._hooks: list[InvalidationHook] = []
        self._listeners: list[ChangeListener] = []
        self._generation = 0
        """Bumped by every invalidation: a read begun under an older one is not cached."""
        self.last_used = LastUsedTracker(sessions, last_used_flush_seconds)
        self.db_reads = 0
        """Count of store reads (a test asserts the hot path makes none)."""
        self.list_in_force: ListInForce | None = None
        """The sanctions list this process screens with (the app sets it): a
        customer screened against another is held until re-screened."""

    # --- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self.last_used.start()

    async def stop(self) -> None:
        await self.last_used.stop()
        if self.oidc is not None:
            await self.oidc.close()

    # --- invalidation ------------------------------------------------------

    def on_invalidate(self, hook: InvalidationHook) -> None:
        """``hook`` runs for this process's own changes only (to announce them)."""
        self._hooks.append(hook)

    def on_change(self, listener: ChangeListener) -> None:
        """``listener`` runs for every change this process learns of, whoever made it."""
        self._listeners.append(listener)

    async def _notify(self, kind: InvalidationKind, ident: str) -> None:
        for hook in self._hooks:
            result = hook(kind, ident)
            if result is not None:
                await result

    async def invalidate_key(self, key_id: str, propagate: bool = True) -> None:
        self._generation += 1
        self._inflight.pop(key_id, None)
        self._keys.pop(key_id, None)
        self.key_misses.discard(key_id)
        for listener in self._listeners:
            listener("key", key_id)
        if propagate:
            await self._notify("key", key_id)

    async def invalidate_customer(self, customer_id: str, propagate: bool = True) -> None:
        self._generation += 1
        self._inflight.clear()  # which customer an in-flight key read is for is not known yet
        self._customers.pop(customer_id, None)
        self.customer_misses.discard(customer_id)
        for key_id in [k for k, e in self._keys.items() if e.value.customer_id == customer_id]:
            del self._keys[key_id]
        for listener in self._listeners:
            listener("customer", customer_id)
        if propagate:
            await self._notify("customer", customer_id)

    def clear(self) -> None:
        self._generation += 1
        self._inflight.clear()
        self._keys.clear()
        self._customers.clear()
        self.key_misses.clear()
        self.customer_misses.clear()

    # --- identify ----------------------------------------------------------

    async def identify(
        self, bearer: str | None, api_key: str | None, authorization_problem: str | None = None
    ) -> Principal:
        credential = (api_key or "").strip() or (bearer or "").strip()
        if not credential:
            raise AuthenticationFailed(authorization_problem or "missing credential")
        if credential.startswith(f"{KEY_KIND}_"):
            return await self._by_key(credential)
        if self.oidc is not None and self.oidc.looks_like_jwt(credential):
            return await self._by_token(credential)
        raise AuthenticationFailed("unrecognised credential")

    async def _by_key(self, credential: str) -> Principal:
        parsed = creds.parse(KEY_KIND, credential)
        if parsed is None:
            raise AuthenticationFailed("malformed gateway key")
        record = await self._key_record(parsed.id)
        if record is None:
            # No key_id: the audit record's key_id reads as a real key, and this one is
            # only the caller's claim; the reason keeps it for the investigation.
            raise AuthenticationFailed(f"unknown gateway key (claimed id {parsed.id})")
        if not creds.verify_secret(record.salt, record.hash, parsed.secret):
            raise AuthenticationFailed("invalid gateway key", parsed.id)
        if record.revoked:
            raise AuthenticationFailed("gateway key revoked", parsed.id)
        now = self._now()
        if record.expires_at is not None and now >= record.expires_at:
            raise AuthenticationFailed("gateway key expired", parsed.id)
        self.last_used.mark(parsed.id, now)
        return record.principal

    async def _key_record(self, key_id: str) -> KeyRecord | None:
        entry = self._keys.get(key_id)
        now = self._clock()
        if entry is not None and now - entry.loaded_at < self._ttl:
            return entry.value
        if self.key_misses.fresh(key_id, now):
            return None
        pending = self._inflight.get(key_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._inflight[key_id] = future
        generation = self._generation
        try:
            record = await self._read(key_id)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, no "never retrieved" warning
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            if self._inflight.get(key_id) is future:  # an invalidation may have dropped it
                del self._inflight[key_id]
        if generation == self._generation:  # else overtaken by an invalidation (module doc)
            if record is None:
                self._keys.pop(key_id, None)  # cached once, deleted since
                self.key_misses.add(key_id, now)
            else:
                self.key_misses.discard(key_id)
                self._keys[key_id] = _Entry(record, now)
        future.set_result(record)
        return record

    async def _read(self, key_id: str) -> KeyRecord | None:
        self.db_reads += 1
        try:
            async with self._sessions() as session:
                return await load_key(session, key_id, self.list_in_force)
        except (SQLAlchemyError, OSError) as exc:
            log.error("identity store unavailable reading key %s: %s", key_id, exc)
            raise IdentityStoreUnavailable(str(exc)) from exc

    async def _by_token(self, token: str) -> Principal:
        assert self.oidc is not None
        verified = await self.oidc.verify(token)
        principal = await self._customer(verified.customer_id)
        # A copy: the cached principal is the customer's, any of its tokens'.
        return replace(principal, token_expires_at=verified.stops_verifying_at)

    async def _customer(self, customer_id: str) -> Principal:
        entry = self._customers.get(customer_id)
        now = self._clock()
        if entry is not None and now - entry.loaded_at < self._ttl:
            return entry.value
        if self.customer_misses.fresh(customer_id, now):
            return _require(None, customer_id)
        self.db_reads += 1
        generation = self._generation
        try:
            async with self._sessions() as session:
                principal = await load_customer(session, customer_id, self.list_in_force)
        except (SQLAlchemyError, OSError) as exc:
            log.error("identity store unavailable reading customer %s: %s", customer_id, exc)
            raise IdentityStoreUnavailable(str(exc)) from exc
        if generation == self._generation:  # else overtaken by an invalidation (module doc)
            if principal is None:
                self._customers.pop(customer_id, None)
                self.customer_misses.add(customer_id, now)
            else:
                self.customer_misses.discard(customer_id)
                self._customers[customer_id] = _Entry(principal, now)
        return _require(principal, customer_id)


def _require(principal: Principal | None, customer_id: str) -> Principal:
    if principal is None:
        raise AuthenticationFailed(f"token names unknown customer {customer_id!r}")
    return principal
