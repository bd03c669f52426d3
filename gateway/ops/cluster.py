"""Cluster sync: admin changes reach every replica (and every worker) at once.

Each process caches principals, keys and admin tokens (``cache_ttl_seconds``)
and holds a compiled policy bundle. When one process changes one of them
(admin API write, policy reload), it publishes ``{"o": origin, "k": kind,
"id": id}`` on the bus; every other process drops that cache entry
(``propagate=False``, so nothing echoes) or reloads its own policy directory,
validating it itself. Bus: Redis pub/sub when ``GATEWAY_REDIS_URL`` is set,
else PostgreSQL LISTEN/NOTIFY when the database is PostgreSQL, else none (a
single process needs none).

Staleness bound: a change is in force on every connected process within the
bus latency (milliseconds; the scale-out test asserts under 1 s). A process
whose bus connection broke misses messages, so on every reconnection it drops
all its caches and reloads its policy. Whatever the bus misses (a process cut
off, changes written by the CLI straight into the database, a policy reload
through the admin API) the change feed (``gateway.ops.changefeed``) applies
within ``change_poll_seconds`` (1 s).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from sqlalchemy.engine import make_url

from gateway.admin.auth import AdminAuthenticator
from gateway.identity.identifier import GatewayIdentifier
from gateway.identity.invalidation import InvalidationKind
from gateway.ops import metrics
from gateway.ops.bus import Bus, PostgresBus, RedisBus
from gateway.policy.holder import PolicyHolder, ReloadResult
from gateway.settings import Settings

log = logging.getLogger("gateway.cluster")

Publish = Callable[[str, str], Coroutine[Any, Any, None]]


class ClusterPolicyHolder(PolicyHolder):
    """A PolicyHolder whose successful reloads (admin API or file watch) are announced."""

    publish: Publish | None = None

    async def reload(self) -> ReloadResult:
        result = await super().reload()
        if result.ok and self.publish is not None:
            await self.publish("policy", result.version)
        return result

    async def reload_from_peer(self) -> ReloadResult:
        """Reload because a peer did: validate our own directory, do not announce."""
        return await super().reload()


class ClusterAdminAuthenticator(AdminAuthenticator):
    """An AdminAuthenticator whose token invalidations are announced."""

    publish: Publish | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: set[asyncio.Task[None]] = set()

    def invalidate(self, token_id: str) -> None:
        super().invalidate(token_id)
        if self.publish is not None:
            # invalidate() is synchronous; the announcement follows at once.
            task = asyncio.get_running_loop().create_task(self.publish("token", token_id))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def invalidate_from_peer(self, token_id: str) -> None:
        super().invalidate(token_id)

    def clear(self) -> None:
        # AdminAuthenticator has no public clear(); this drops every cached token.
        self._cache.clear()
        self._cached_at.clear()


def bus_for(settings: Settings) -> Bus | None:
    if settings.redis_url:
        return RedisBus(settings.redis_url)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "postgresql":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresBus(dsn)
    return None


class ClusterSync:
    def __init__(
        self,
        bus: Bus,
        identifier: GatewayIdentifier,
        policy: ClusterPolicyHolder,
        admin_auth: ClusterAdminAuthenticator,
    ) -> None:
        self.bus = bus
        self.identifier = identifier
        self.policy = policy
        self.admin_auth = admin_auth
        self.origin = secrets.token_hex(8)
        self._connected_once = False
        self.received = 0

    async def start(self) -> None:
        self.identifier.on_invalidate(self._on_invalidate)
        self.policy.publish = self.publish
        self.admin_auth.publish = self.publish
        await self.bus.start(self._on_message, self._on_connect)
        log.info("cluster sync over %s (origin %s)", self.bus.name, self.origin)

    async def stop(self) -> None:
        self.policy.publish = None
        self.admin_auth.publish = None
        await self.bus.stop()

    async def _on_invalidate(self, kind: InvalidationKind, ident: str) -> None:
        await self.publish(kind, ident)

    async def publish(self, kind: str, ident: str) -> None:
        metrics.CLUSTER_MESSAGES.labels("out", kind).inc()
        await self.bus.publish(orjson.dumps({"o": self.origin, "k": kind, "id": ident}).decode())

    async def _on_connect(self) -> None:
        if not self._connected_once:
            self._connected_once = True
            return
        # Messages may have been missed while disconnected: forget everything cached.
        log.warning("cluster bus reconnected: dropping caches and reloading policy")
        self.identifier.clear()
        self.admin_auth.clear()
        await self.policy.reload_from_peer()

    async def _on_message(self, payload: str) -> None:
        try:
            doc: dict[str, Any] = orjson.loads(payload)
            origin, kind, ident = str(doc["o"]), str(doc["k"]), str(doc["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.error("cluster message ignored, malformed (%s): %.200r", exc, payload)
            return
        if origin == self.origin:
            return
        self.received += 1
        metrics.CLUSTER_MESSAGES.labels("in", kind).inc()
        if kind == "key":
            await self.identifier.invalidate_key(ident, propagate=False)
        elif kind == "customer":
            await self.identifier.invalidate_customer(ident, propagate=False)
        elif kind == "token":
            self.admin_auth.invalidate_from_peer(ident)
        elif kind == "policy":
            result = await self.policy.reload_from_peer()
            if result.version != ident:
                log.error("peer reloaded policy %s, this replica has %s (policy directories "
                          "differ?)", ident, result.version)  # fmt: skip
        else:
            log.warning("cluster message of unknown kind %r ignored", kind)
