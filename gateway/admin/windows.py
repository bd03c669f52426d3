"""Moving windows of ``limits`` for the admin API: in this process, or in Redis.

The admin lockout (``lockout.py``) and the policy-run bound (``policy_runs.py``)
count per caller in a moving window. With ``GATEWAY_REDIS_URL`` the window is
kept in the Redis the quota counters use, through redis-py (the quotas' client),
so replicas and workers meet one limit, not one each. What a caller does when
Redis cannot answer differs (the lockout falls back to its own window, a
policy run is refused with 503), so the storage's errors reach it as
``limits.errors.StorageError``.

``limits`` (~1.4 MB resident with its storage modules) is imported only when
a window is first built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from limits.aio.strategies import MovingWindowRateLimiter

SOCKET_TIMEOUT_S = 2
"""Connect and command timeout of the Redis window: an admin call waits at most
this long on a Redis that does not answer before its caller decides."""


def memory_window() -> MovingWindowRateLimiter:
    """A window of this process (built on the event loop: the storage wants one)."""
    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    return MovingWindowRateLimiter(MemoryStorage())


def redis_window(redis_url: str) -> MovingWindowRateLimiter:
    """A window in the Redis at ``redis_url``; every driver error is a ``StorageError``."""
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    # ``async+redis://`` on redis-py (the client the quotas use);
    # wrap_exceptions turns every driver error into StorageError.
    storage = RedisStorage(f"async+{redis_url}", implementation="redispy", wrap_exceptions=True,
                           socket_timeout=SOCKET_TIMEOUT_S,
                           socket_connect_timeout=SOCKET_TIMEOUT_S)  # fmt: skip
    return MovingWindowRateLimiter(storage)
