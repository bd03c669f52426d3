"""Brute-force lockout for the admin API: failed authentications per client IP.

One moving window per IP (``FAILED_ATTEMPTS_PER_MINUTE`` failures a minute),
and ``Proven``: the credentials a locked-out IP may still use (what a locked
IP gets, and why, is documented in ``gateway.admin.auth``).
In one process by default. With ``GATEWAY_REDIS_URL`` the window lives in
Redis, so guesses spread over replicas (a load balancer spreads them for the
attacker) meet one limit, not one per replica.

If Redis cannot answer, each process falls back to its own window (logged,
counted in ``gateway_cluster_errors{operation="admin_lockout"}``): the lockout
weakens to per replica, it never disappears, and the admin API stays usable
for the operators who need it during an incident.

``limits`` (~1.4 MB resident with its storage modules) is imported only when
a window is first needed: on the first failure, or on the first admin call
when the window is shared.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections import OrderedDict
from typing import TYPE_CHECKING

from gateway.admin.windows import memory_window, redis_window
from gateway.ops import metrics

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.aio.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

FAILED_ATTEMPTS_PER_MINUTE = 20
_NAMESPACE = "gateway-admin-auth"


class FailedAttempts:
    def __init__(self, per_minute: int = FAILED_ATTEMPTS_PER_MINUTE,
                 redis_url: str | None = None) -> None:  # fmt: skip
        self._per_minute = per_minute
        self._redis_url = redis_url
        self._local: MovingWindowRateLimiter | None = None
        self._shared: MovingWindowRateLimiter | None = None
        self._item: RateLimitItem | None = None

    def _item_ready(self) -> RateLimitItem:
        if self._item is None:
            from limits import RateLimitItemPerMinute

            self._item = RateLimitItemPerMinute(self._per_minute)
        return self._item

    def _local_ready(self) -> MovingWindowRateLimiter:
        # Built lazily: the memory storage wants a running event loop.
        if self._local is None:
            self._local = memory_window()
        return self._local

    def _shared_ready(self) -> MovingWindowRateLimiter | None:
        if self._redis_url is None:
            return None
        if self._shared is None:
            self._shared = redis_window(self._redis_url)
        return self._shared

    async def blocked(self, client_ip: str) -> bool:
        """Whether ``client_ip`` is over the limit (shared window, else this process's)."""
        shared = self._shared_ready()
        if shared is not None:
            from limits.errors import StorageError

            try:
                return not await shared.test(self._item_ready(), _NAMESPACE, client_ip)
            except StorageError as exc:
                self._shared_failed("test", exc)
        if self._local is None:
            return False  # no failure recorded here yet, so no IP can be over the limit
        return not await self._local.test(self._item_ready(), _NAMESPACE, client_ip)

    async def record(self, client_ip: str) -> None:
        """Count one failure. The local window always counts too: it is the fallback."""
        await self._local_ready().hit(self._item_ready(), _NAMESPACE, client_ip)
        shared = self._shared_ready()
        if shared is not None:
            from limits.errors import StorageError

            try:
                await shared.hit(self._item_ready(), _NAMESPACE, client_ip)
            except StorageError as exc:
                self._shared_failed("hit", exc)

    @staticmethod
    def _shared_failed(operation: str, exc: Exception) -> None:
        metrics.CLUSTER_ERRORS.labels("admin_lockout").inc()
        log.error("shared admin lockout unavailable (%s: %s); this process's own window "
                  "applies", operation, exc)  # fmt: skip


class Proven:
    """Keyed digests of credentials that authenticated in this process.

    Digests, not the tokens: no clear credential is kept beyond its request.
    The key is random per process, so a digest cannot be precomputed from a
    guess, and a membership test is one dictionary probe of an unpredictable
    value: its timing says nothing about how near a guess came. Bounded (admin
    tokens are few); the oldest falls out first.
    """

    MAX = 4096

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._seen: OrderedDict[bytes, str | None] = OrderedDict()

    def digest(self, raw: str) -> bytes:
        return hmac.new(self._key, raw.encode("utf-8"), hashlib.sha256).digest()

    def add(self, digest: bytes, token_id: str | None) -> None:
        self._seen[digest] = token_id
        self._seen.move_to_end(digest)
        while len(self._seen) > self.MAX:
            self._seen.popitem(last=False)

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._seen

    def forget(self, token_id: str) -> None:
        for digest in [d for d, tid in self._seen.items() if tid == token_id]:
            del self._seen[digest]
