"""Change feed: a write that changes who may call is in force here within a second,
whoever made it and whether or not a cluster bus carried it.

Every write to a customer, an API key or an admin token adds a row to
``admin_actions`` in the same transaction as the change itself: the admin API,
the KYC webhook and the ``gateway`` CLI alike; so does a policy reload through
the admin API. Each serving process polls that table
(``GATEWAY_CHANGE_POLL_SECONDS``, default 1 s), drops the cache entries the new
rows name, and reloads its own policy directory when a row names a policy
version other than the one it runs. This is what reaches a process when:

- the change was made with the CLI, straight into the database (no process
  heard of it, so nothing was published);
- the process is one of several ``--workers`` on SQLite without Redis, where
  there is no bus at all (and, with the file watch off, nothing else would
  tell it of a policy reload);
- the bus was down or the message was lost (delivery is at-most-once).

The bus stays the fast path (milliseconds); the feed is the bound: the cache TTL
(30 s) no longer is. Dropping an entry twice only costs one database read.

Row ids come from a sequence (PostgreSQL) or ``max(rowid) + 1`` (SQLite). On
PostgreSQL a transaction that took its id before another can commit after it,
so a feed that only remembered "the highest id seen" could skip the earlier
one. Each poll therefore reads back from the highest id seen at a poll
``LOOKBACK_S`` seconds ago and skips the ids it has already handled: a write
whose transaction commits within ``LOOKBACK_S`` of taking its id is never
missed. (SQLite has one writer at a time, so it has no such gaps.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminAuthenticator
from gateway.identity.identifier import GatewayIdentifier
from gateway.identity.tables import AdminAction
from gateway.ops import metrics
from gateway.ops.background import BackgroundTask
from gateway.ops.cluster import ClusterPolicyHolder

log = logging.getLogger("gateway.cluster")

LOOKBACK_S = 10.0
"""How long after taking its id a write may commit and still be seen."""


def _aware(at: datetime) -> datetime:
    # SQLite hands back the stored UTC time without its zone.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class ChangeFeed:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        identifier: GatewayIdentifier,
        admin_auth: AdminAuthenticator,
        policy: ClusterPolicyHolder,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._identifier = identifier
        self._admin_auth = admin_auth
        self._policy = policy
        self._interval = interval_s
        self._clock = clock
        self._marks: deque[tuple[float, int]] = deque()
        """(poll time, highest id seen by then), oldest first."""
        self._handled: set[int] = set()
        self._task = BackgroundTask("change-feed")
        self.applied = 0

    async def start(self) -> None:
        """Start from the current end of the log: this process has cached nothing yet."""
        async with self._sessions() as session:
            newest = await session.scalar(select(func.max(AdminAction.id)))
        self._marks.append((self._clock(), int(newest or 0)))
        self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()

    def _floor(self) -> int:
        """The highest id seen at a poll at least LOOKBACK_S ago (or the first one)."""
        cutoff = self._clock() - LOOKBACK_S
        marks = self._marks
        while len(marks) > 1 and marks[1][0] <= cutoff:
            marks.popleft()
        return marks[0][1]

    async def poll(self) -> int:
        """Read the rows after the floor and apply the new ones; returns how many."""
        floor = self._floor()
        async with self._sessions() as session:
            result = await session.execute(
                select(
                    AdminAction.id, AdminAction.target_type, AdminAction.target_id, AdminAction.at
                )
                .where(AdminAction.id > floor)
                .order_by(AdminAction.id)
            )  # no LIMIT: a limit could stall on rows already handled; the window is small
            rows = result.all()
        self._handled = {i for i in self._handled if i > floor}
        applied = 0
        for row_id, target_type, target_id, at in rows:
            if row_id in self._handled:
                continue
            await self._apply(target_type, target_id, at)
            self._handled.add(row_id)
            applied += 1
        newest = max(self._marks[-1][1], rows[-1][0] if rows else 0)
        self._marks.append((self._clock(), newest))
        self.applied += applied
        return applied

    async def _apply(self, target_type: str, target_id: str, at: datetime) -> None:
        if target_type == "api_key":
            await self._identifier.invalidate_key(target_id, propagate=False)
        elif target_type == "customer":
            await self._identifier.invalidate_customer(target_id, propagate=False)
        elif target_type == "admin_token":
            # The base class's invalidate: a peer's change is not announced again.
            AdminAuthenticator.invalidate(self._admin_auth, target_id)
        elif target_type == "policy":
            if self._policy.current.version == target_id:
                return  # already in force here (this process reloaded, or a bus told it)
            loaded_before = self._policy.loaded_at
            result = await self._policy.reload_from_peer()
            if result.version == target_id:
                pass
            elif loaded_before is not None and loaded_before > _aware(at):
                # This process loaded a bundle after that reload (a file edit
                # since, say): the row is superseded, not a disagreement.
                log.info("policy reload to %s (at %s) is superseded here by %s",
                         target_id, at, result.version)  # fmt: skip
            else:
                log.error("a peer reloaded policy %s, this process has %s (policy "
                          "directories differ?)", target_id, result.version)  # fmt: skip
        else:
            return  # an action that changes nothing this process caches
        metrics.CHANGE_FEED_ROWS.labels(target_type).inc()

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.poll()
            except Exception as exc:  # noqa: BLE001 - a feed that died silently would be worse
                # Nothing is lost: the next poll reads from the same floor. Every
                # failure is counted; the log says when it starts and ends.
                metrics.CLUSTER_ERRORS.labels("change_feed").inc()
                if not failing:
                    log.error("change feed poll failed (%s: %s); retrying every %.1f s",
                              type(exc).__name__, exc, self._interval)  # fmt: skip
                failing = True
            else:
                if failing:
                    log.warning("change feed poll recovered")
                failing = False
