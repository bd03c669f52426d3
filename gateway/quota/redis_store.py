"""Counters in Redis, shared by every replica (``GATEWAY_REDIS_URL``).

Every check-and-consume is one Lua script, so N replicas and any number of
concurrent requests see one count: one ``EVALSHA`` per admit, one per settle
(token windows and the stream lease together). Keys and the static script
arguments come precomputed with the ``PreparedPlan``. Calls use short socket
timeouts and no client-side retry on timeouts: a command that timed out may
have run, and retrying it would count the request twice (a connection found
dead is retried once on a fresh one, see ``__init__``). A failed call raises
``StoreDown``; the pool reconnects on the next call, so service resumes by
itself when Redis is back (scripts are re-loaded on ``NOSCRIPT`` by redis-py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from redis.asyncio import Connection, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.quota import lua
from gateway.quota.buckets import PreparedPlan, amounts_key
from gateway.quota.ledger import Ledger
from gateway.quota.reset_watch import IN_CHECK, MARKER_KEY
from gateway.quota.store import AdmitResult, CounterState, StoreDown

log = logging.getLogger(__name__)

# What "the store is down" looks like from redis-py. Script errors
# (ResponseError) are bugs and propagate as they are.
_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisStore:
    def __init__(self, url: str, socket_timeout: float = 0.5, max_connections: int = 64) -> None:
        self.url = url
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # One immediate retry on a connection error only: after Redis
            # restarts, every pooled socket is dead, and each one's first use
            # failed with a 503 (a burst of 30 requests got 29). A command
            # written to a socket the server already closed never ran, so
            # sending it again on a fresh connection cannot count twice.
            # Timeouts are never retried: a timed-out script may have run.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            max_connections=max_connections,
            decode_responses=True,
            redis_connect_func=self._connected,
        )
        self._admit = self._redis.register_script(lua.ADMIT)
        self._settle = self._redis.register_script(lua.SETTLE)
        self._refresh = self._redis.register_script(lua.REFRESH)
        self._epoch = self._redis.register_script(lua.EPOCH)
        self._restore = self._redis.register_script(lua.RESTORE)
        self.ledger = Ledger()
        """This process's own share of the counters, put back by ``restore``."""
        self.check_generation: Callable[[], Awaitable[object]] | None = None
        """Set by the reset watch: its check (generation, restore), run from a new
        connection that finds another generation, before its first command."""
        self.known_generation: str | None = None
        """The generation this process's contributions live in (set by the watch)."""
        self._recheck: asyncio.Future[object] | None = None

    async def _run_admit(
        self,
        mode: str,
        plan: PreparedPlan,
        tokens: int,
        now_ms: int,
        lease_id: str,
        exp: int,
        requests: int = 1,
    ) -> list[int]:
        args = (mode, now_ms, lease_id, exp, tokens, *plan.spec, requests)
        try:
            raw = await self._admit(keys=plan.keys, args=args)
        except _DOWN as exc:
            raise StoreDown(f"redis {mode}: {exc.__class__.__name__}: {exc}") from exc
        return [int(v) for v in raw]

    async def _connected(self, conn: Connection) -> None:
        """Every new connection (so after every Redis restart) first looks at the
        generation: one that changed means the counters were lost, and the
        command waiting for this connection (an admit, typically) must not run
        before our share is back; else, until the watch's next look, every
        admit would count from zero. Nothing on the request path otherwise."""
        await conn.on_connect_check_health(check_health=True)  # redis-py's own handshake
        if self.check_generation is None or self.known_generation is None or IN_CHECK.get():
            return  # no watch yet, or the watch's own connections
        if self._recheck is None:
            await conn.send_command("GET", MARKER_KEY)
            if await conn.read_response() == self.known_generation:
                return
            recheck = self._recheck = asyncio.ensure_future(self.check_generation())

            def done(_: object) -> None:
                self._recheck = None

            recheck.add_done_callback(done)
        try:
            await asyncio.shield(self._recheck)
        except StoreDown as exc:  # the check failed: let the command fail as well
            raise RedisConnectionError(str(exc)) from exc

    @staticmethod
    def _states(raw: list[int]) -> list[CounterState]:
        return [CounterState(raw[i], raw[i + 1], raw[i + 2]) for i in range(1, len(raw), 3)]

    async def admit(
        self,
        plan: PreparedPlan,
        tokens: int,
        now_ms: int,
        lease_id: str,
        lease_expiry_ms: int,
        requests: int = 1,
    ) -> AdmitResult:
        raw = await self._run_admit(
            "admit", plan, tokens, now_ms, lease_id, lease_expiry_ms, requests
        )
        if raw[0] == 1:
            self.ledger.admitted(plan, tokens, requests, now_ms)
        return AdmitResult(raw[0] == 1, self._states(raw))

    async def peek(self, plan: PreparedPlan, now_ms: int) -> list[CounterState]:
        return self._states(await self._run_admit("peek", plan, 0, now_ms, "", 0))

    async def settle(
        self,
        plan: PreparedPlan,
        admitted_ms: int,
        reserved: int,
        actual: int | None,
        lease_id: str,
        now_ms: int,
    ) -> None:
        args: tuple[str | int, ...] = (
            now_ms,
            admitted_ms,
            reserved,
            -1 if actual is None else actual,
            lease_id,
            len(plan.token_windows),
            *plan.settle_spec,
        )
        try:
            await self._settle(keys=plan.settle_keys, args=args)
        except _DOWN as exc:
            # The ledger keeps the whole reservation, as the store does.
            raise StoreDown(f"redis settle: {exc}") from exc
        if plan.token_windows:
            self.ledger.settled(plan, admitted_ms, reserved, actual, now_ms)

    async def refresh_leases(
        self, keys: Sequence[str], lease_id: str, expiry_ms: int, now_ms: int
    ) -> bool:
        # The set's own TTL only collects sets of customers who never return;
        # it is kept at twice the lease's, like in the admit script.
        key_ttl = max(expiry_ms - now_ms, 1000) * 2
        try:
            alive = await self._refresh(keys=keys, args=[lease_id, expiry_ms, key_ttl])
        except _DOWN as exc:
            raise StoreDown(f"redis refresh: {exc}") from exc
        return int(alive) == len(keys)

    async def generation(self, key: str, candidate: str) -> tuple[bool, str, int]:
        """The store's generation marker, planted from ``candidate`` if absent
        (no TTL): (planted now, value, age in ms). See ``reset_watch``."""
        try:
            planted, value, age = await self._epoch(keys=[key], args=[candidate])
        except _DOWN as exc:
            raise StoreDown(f"redis marker: {exc.__class__.__name__}: {exc}") from exc
        return int(planted) == 1, str(value), int(age)

    async def restore(self, marker: str, done_key: str, generation: str, now_ms: int) -> int:
        """Put this process's open slots back into generation ``generation``
        (``lua.RESTORE``): slots restored, -1 if the store moved to another
        generation meanwhile, -2 if this process already restored into it."""
        counter_keys, args = self.ledger.restore_args(now_ms)
        keys = [marker, done_key]
        for key in counter_keys:
            keys += (key, amounts_key(key))
        # The "restored" key outlives every window: a retry later has nothing left to add.
        done_ttl = 86_400_000 + 60_000
        try:
            n = await self._restore(
                keys=keys, args=[generation, now_ms, done_ttl, len(counter_keys), *args]
            )
        except _DOWN as exc:
            raise StoreDown(f"redis restore: {exc.__class__.__name__}: {exc}") from exc
        return int(n)

    def forget_closed(self, now_ms: int) -> None:
        self.ledger.prune(now_ms)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except _DOWN as exc:
            log.warning("quota store ping failed: %s", exc)
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()
