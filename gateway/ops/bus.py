"""Message buses between replicas: Redis pub/sub or PostgreSQL LISTEN/NOTIFY.

A bus delivers small text payloads to every process subscribed to one
channel, the sender included (the receiver filters its own). Delivery is
at-most-once: while a subscriber is disconnected it misses messages, so on
every (re)connection the bus calls ``on_connect`` and the cluster sync drops
its caches wholesale; what it missed meanwhile reaches it through the change
feed (``gateway.ops.changefeed``, within a second) or, at the latest, the cache TTL.

Both buses reconnect with backoff forever and never raise into the caller:
a failed publish is logged and counted (``gateway_cluster_errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gateway.ops import metrics
from gateway.ops.background import BackgroundTask

log = logging.getLogger("gateway.cluster")

OnMessage = Callable[[str], Awaitable[None]]
OnConnect = Callable[[], Awaitable[None]]
MAX_BACKOFF_S = 2.0
CHANNEL = "gateway_cluster"


class Bus(Protocol):
    name: str

    async def start(self, on_message: OnMessage, on_connect: OnConnect) -> None: ...
    async def publish(self, payload: str) -> None: ...
    async def stop(self) -> None: ...


class _Reconnecting:
    """The receive loop both buses share: connect, listen until broken, back off."""

    name = "bus"

    def __init__(self) -> None:
        self._task = BackgroundTask(f"{self.name}-sub")
        self._stop = asyncio.Event()
        self.connected = asyncio.Event()

    async def start(self, on_message: OnMessage, on_connect: OnConnect) -> None:
        self._task.start(lambda: self._run(on_message, on_connect))
        # Start-up waits briefly for the first subscription, so a replica that
        # reports ready is already listening; a bus that is down does not block it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=5)

    async def stop(self) -> None:
        self._stop.set()
        await self._task.stop()
        await self._close()

    async def _run(self, on_message: OnMessage, on_connect: OnConnect) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                await self._subscribe(on_message)
                self.connected.set()
                failures = 0
                log.info("cluster bus %s subscribed", self.name)
                await on_connect()
                await self._listen(on_message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any bus failure: reconnect, loudly
                self.connected.clear()
                failures += 1
                metrics.CLUSTER_ERRORS.labels("subscribe").inc()
                log.error("cluster bus %s lost (%s: %s); reconnecting", self.name,
                          type(exc).__name__, exc)  # fmt: skip
                await self._close()
                delay = min(0.05 * 2**failures, MAX_BACKOFF_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)

    async def _subscribe(self, on_message: OnMessage) -> None:
        raise NotImplementedError

    async def _listen(self, on_message: OnMessage) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


class RedisBus(_Reconnecting):
    name = "redis"

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        super().__init__()
        from redis.asyncio import Redis

        self._url = url
        self._channel = channel
        self._pub: Redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._sub: Redis | None = None
        self._pubsub: Any = None

    async def _subscribe(self, on_message: OnMessage) -> None:
        from redis.asyncio import Redis

        self._sub = Redis.from_url(self._url, socket_connect_timeout=2)
        self._pubsub = self._sub.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self._channel)

    async def _listen(self, on_message: OnMessage) -> None:
        pubsub = self._pubsub
        idle = 0.0
        while not self._stop.is_set():
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                idle += 1.0
                if idle >= 5.0:  # a silent dead TCP connection would never raise otherwise
                    await pubsub.ping()
                    idle = 0.0
                continue
            idle = 0.0
            if message.get("type") != "message":
                continue  # the pong of our own keep-alive ping, not a cluster message
            data = message.get("data")
            if isinstance(data, bytes):
                await on_message(data.decode("utf-8", "replace"))

    async def publish(self, payload: str) -> None:
        try:
            await self._pub.publish(self._channel, payload)
        except Exception as exc:  # noqa: BLE001 - peers fall back to the cache TTL; say so
            metrics.CLUSTER_ERRORS.labels("publish").inc()
            log.error("cluster publish over redis failed (%s); peers see the change "
                      "within the cache TTL", exc)  # fmt: skip

    async def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        sub, self._sub = self._sub, None
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            if sub is not None:
                await sub.aclose()

    async def stop(self) -> None:
        await super().stop()
        with contextlib.suppress(Exception):
            await self._pub.aclose()


class PostgresBus(_Reconnecting):
    """LISTEN/NOTIFY on a dedicated asyncpg connection (not from the pool)."""

    name = "postgres"

    def __init__(self, dsn: str, channel: str = CHANNEL) -> None:
        super().__init__()
        self._dsn = dsn
        self._channel = channel
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._lost = asyncio.Event()

    async def _subscribe(self, on_message: OnMessage) -> None:
        import asyncpg

        self._lost.clear()
        self._conn = await asyncpg.connect(self._dsn, timeout=5)
        self._conn.add_termination_listener(lambda _conn: self._lost.set())
        await self._conn.add_listener(self._channel, self._notified)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    async def _listen(self, on_message: OnMessage) -> None:
        while not self._stop.is_set():
            if self._lost.is_set():
                raise ConnectionError("LISTEN connection terminated")
            try:
                payload = await asyncio.wait_for(self._queue.get(), timeout=5.0)
            except TimeoutError:
                async with self._lock:  # keepalive: detects a silently dead connection
                    await self._conn.fetchval("SELECT 1", timeout=5)
                continue
            await on_message(payload)

    async def publish(self, payload: str) -> None:
        try:
            import asyncpg

            # A short-lived connection of its own: the listening one may be
            # reconnecting, and publishing must not wait behind it.
            conn = await asyncpg.connect(self._dsn, timeout=5)
            try:
                await conn.execute("SELECT pg_notify($1, $2)", self._channel, payload)
            finally:
                await conn.close()
        except Exception as exc:  # noqa: BLE001 - peers fall back to the cache TTL; say so
            metrics.CLUSTER_ERRORS.labels("publish").inc()
            log.error("cluster publish over postgres failed (%s); peers see the change "
                      "within the cache TTL", exc)  # fmt: skip

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
