"""How often, and how many at once, one admin token may run ``POST
/admin/v1/policy/test`` and ``/policy/impact``; and what the admin action log
keeps of each run.

Both are CPU work of seconds in the serving process (loading a candidate,
running its cases, replaying a week of decisions). Unbounded, one caller
could start them back to back, or dozens at once, and hold a worker's CPU,
and with it the GIL its proxied requests need. Per token (the bootstrap
token is one caller):

- one run of each route at a time, in each process: a second one while the
  first runs is refused at once with 429, never queued behind it in the
  worker (what that protects is the worker the run executes in);
- at most ``GATEWAY_ADMIN_POLICY_RUNS_PER_MINUTE`` (default 20) runs of the
  two routes together in any 60 seconds (a moving window of ``limits``);
  past that, 429 with ``retry-after`` the seconds until the oldest run leaves
  the window. With ``GATEWAY_REDIS_URL`` the window is in Redis, one for the
  whole deployment (``gateway.admin.windows``): kept in each process, a token
  got the budget once per worker and replica, N times in all. Without Redis it
  is this process's (a single process needs no more).

Both answer ``{"detail": ...}`` with ``retry-after``. A refused call runs
nothing, is not counted and is not logged. When the Redis window cannot be
read the run is refused with 503 ``{"detail": ...}`` and ``retry-after: 1``
(logged, counted in ``gateway_cluster_errors{operation="admin_policy_runs"}``):
fail closed, as the quotas are, never an unbounded run. Another token is
another caller; admin tokens are minted by admins only.

A run that answered is one ``admin_actions`` row (``policy.test`` or
``policy.impact``, target type ``policy_run``, which the change feed ignores:
nothing changes), naming the candidate's version (``invalid`` when it does
not load) and the counts it found (``run_summary``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from gateway.admin.auth import AdminActor
from gateway.admin.windows import memory_window, redis_window
from gateway.ops import metrics
from gateway.services import Services

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.aio.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

EXTRAS_KEY = "policy_runs"
RUN_TARGET = "policy_run"
"""The admin action log's target type of a run (not ``policy``: that one
tells every process to reload)."""
BUSY_RETRY_SECONDS = 5
"""``retry-after`` of a run refused because the token's last one still runs:
when it ends is not known; a replay of a quiet log takes a second or two."""
_NAMESPACE = "gateway-admin-policy-runs"


class PolicyRuns:
    """The per-token bound of one process (module docstring)."""

    def __init__(self, per_minute: int, redis_url: str | None = None) -> None:
        self.per_minute = per_minute
        self._redis_url = redis_url
        self._running: set[tuple[str, str]] = set()
        self._limiter: MovingWindowRateLimiter | None = None
        self._item: RateLimitItem | None = None

    def _window(self) -> tuple[MovingWindowRateLimiter, RateLimitItem]:
        # Built on first use: the memory storage wants a running event loop,
        # and a worker that never answers these routes need not import limits.
        if self._limiter is None or self._item is None:
            from limits import RateLimitItemPerMinute

            url = self._redis_url
            self._limiter = memory_window() if url is None else redis_window(url)
            self._item = RateLimitItemPerMinute(self.per_minute)
        return self._limiter, self._item

    @asynccontextmanager
    async def run(self, actor: AdminActor, route: str) -> AsyncIterator[None]:
        """Hold the token's slot for ``route`` while the body runs; 429 when it
        is taken or the token's window is full."""
        caller = actor.token_id or f"name:{actor.name}"
        slot = (caller, route)
        if slot in self._running:
            raise HTTPException(
                429,
                f"a policy {route} run of this token is already running in this worker: "
                "one at a time per token; retry when it has answered",
                {"retry-after": str(BUSY_RETRY_SECONDS)},
            )
        # Taken before the window is consulted (an await): a second call of the
        # same token arriving meanwhile must see the slot taken.
        self._running.add(slot)
        try:
            await self._count(caller)
            yield
        finally:
            self._running.discard(slot)

    async def _count(self, caller: str) -> None:
        """Count a run in the caller's window; 429 when it is full, 503 when the
        window (Redis) cannot be read."""
        from limits.errors import StorageError

        limiter, item = self._window()
        try:
            if await limiter.hit(item, _NAMESPACE, caller):
                return
            stats = await limiter.get_window_stats(item, _NAMESPACE, caller)
        except StorageError as exc:
            metrics.CLUSTER_ERRORS.labels("admin_policy_runs").inc()
            log.error("policy run refused: its shared per-token window cannot be read "
                      "(%s)", exc)  # fmt: skip
            raise HTTPException(
                503,
                "policy test/impact runs are counted in Redis (GATEWAY_REDIS_URL), which "
                "cannot be reached: the run was refused, not run unbounded; retry shortly",
                {"retry-after": "1"},
            ) from None
        wait = min(60, max(1, math.ceil(stats.reset_time - time.time())))
        raise HTTPException(
            429,
            f"at most {self.per_minute} policy test/impact runs a minute per token "
            f"(GATEWAY_ADMIN_POLICY_RUNS_PER_MINUTE); retry in {wait} s",
            {"retry-after": str(wait)},
        )


def policy_runs(services: Services) -> PolicyRuns:
    """This process's bound (its window shared through Redis when configured),
    built from the settings on first use."""
    found = services.extras.get(EXTRAS_KEY)
    if isinstance(found, PolicyRuns):
        return found
    built = PolicyRuns(services.settings.admin_policy_runs_per_minute,
                       services.settings.redis_url)  # fmt: skip
    services.extras[EXTRAS_KEY] = built
    return built


def cases_summary(doc: dict[str, Any], in_force: str) -> dict[str, Any]:
    """What the action log keeps of a ``policy/test`` answer."""
    return {"ok": doc["ok"], "passed": doc["passed"], "failed": doc["failed"],
            "errors": len(doc["errors"]), "in_force": in_force}  # fmt: skip


_LOG_COUNTS = ("total", "to_deny", "to_allow", "skipped", "not_policy", "drift_flips", "in_force")
_CUSTOMER_COUNTS = ("against", "at", "customers", "cut_customers", "granted_customers",
                    "cut_total", "granted_total")  # fmt: skip


def impact_summary(doc: dict[str, Any], source: str, since: str) -> dict[str, Any]:
    """What the action log keeps of a ``policy/impact`` answer: the source
    (``log``, ``records`` or ``customers``) and its counts, never a customer."""
    if not doc["ok"]:
        return {"ok": False, "source": source, "errors": len(doc["errors"])}
    if source == "customers":
        return {"ok": True, "source": source, **{k: doc[k] for k in _CUSTOMER_COUNTS}}
    return {"ok": True, "source": source, "since": since, **{k: doc[k] for k in _LOG_COUNTS}}
