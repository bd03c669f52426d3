"""Unauthenticated refusals per client address and fixed window, for ``probes``.

The count lives where the quota counters live: in the process without
``GATEWAY_REDIS_URL``, in Redis with it, so workers and replicas behind one
load balancer (which spreads an attacker's requests for them) meet one limit,
not one each. Windows are fixed and aligned to the epoch (``start = now //
window * window``), so every process agrees on which window a refusal falls in
and each window has one summary (``gateway.proxy.probes``).

If Redis cannot answer, the process counts alone (logged once a minute,
counted in ``gateway_cluster_errors{operation="probe_limit"}``): the limit
weakens to per process, it never disappears, as the admin lockout's does.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from gateway.ops import metrics
from gateway.ops.throttle import Throttle

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

_PREFIX = "gwprobe"


def client_key(ip: str | None) -> str:
    """What is counted: an IPv4 address, or an IPv6 address's /64.

    One IPv6 host is usually given a whole /64, so counting single IPv6
    addresses would let one client rotate through 2**64 of them."""
    if ip is None:
        return "unknown"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return f"{ipaddress.ip_network(f'{addr}/64', strict=False).network_address}/64"
    return str(addr)


class MemoryCounts:
    """This process's counts; only the current window is kept."""

    def __init__(self) -> None:
        self._start = -1
        self._counts: dict[str, int] = {}

    def hit(self, key: str, start: int) -> int:
        if start != self._start:
            if start < self._start:
                return 1 + self._counts.get(key, 0)  # a clock step back: count, keep nothing
            self._start, self._counts = start, {}
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count


class ProbeCounts:
    """``hit(key, start, window)``: the refusals counted in that window, this one included."""

    def __init__(self, redis_url: str | None) -> None:
        self._local = MemoryCounts()
        self._redis_url = redis_url
        self._redis: Redis | None = None
        self._failures = Throttle()

    def _client(self) -> Redis | None:
        if self._redis_url is None:
            return None
        if self._redis is None:
            # Imported here: a gateway without Redis loads none of redis-py.
            from redis.asyncio import Redis as Client

            self._redis = Client.from_url(self._redis_url, socket_timeout=0.5,
                                         socket_connect_timeout=0.5)  # fmt: skip
        return self._redis

    async def hit(self, key: str, start: int, window: int) -> int:
        local = self._local.hit(key, start)  # always: it is the fallback
        client = self._client()
        if client is None:
            return local
        from redis.exceptions import RedisError

        name = f"{_PREFIX}:{start}:{key}"
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, 2 * window)
                count, _ = await pipe.execute()
            return int(count)
        except (RedisError, OSError) as exc:
            metrics.CLUSTER_ERRORS.labels("probe_limit").inc()
            times = self._failures.due()
            if times:
                log.error("shared unauthenticated-refusal counts unavailable (%s, %d times); "
                          "this process counts alone", exc, times)  # fmt: skip
            return local

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
