"""Noticing other gateways that meter the same customers with counters of their own.

Without GATEWAY_REDIS_URL the quota counters live in this process
(``gateway.quota.memory``): correct for one process only. ``gateway serve``
refuses ``--workers N`` for that reason, but several replicas on one database
each look alone at start-up, and each would admit a customer's full limits:
N replicas, N times the limits, silently. Quotas are the defence against
distillation at volume, so this must not pass unseen.

The database knows the others: every serving process's audit writer holds a
chain lease with a heartbeat (``gateway.audit.nodes``). Shortly after start
and then every ``GATEWAY_QUOTA_PEER_CHECK_SECONDS``, this process counts the
chains held by a live writer other than its own. When there are any it logs
an ERROR (each check), sets ``gateway_quota_unshared_peers`` and shows the
count in ``/readyz``, which stays ready: failing it would take every replica
out of the load balancer at once. A short-lived command that writes to the
audit log (``gateway audit seal``) holds a lease too, and is counted while it
runs. Only built without Redis: with it, the counters are shared.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.nodes import live_chains
from gateway.ops.background import BackgroundTask, every

log = logging.getLogger(__name__)

PEERS_KEY = "quota_peers"
"""``Services.extras`` key of the process's ``UnsharedPeerWatch`` (``/readyz`` reads it)."""
FIRST_CHECK_S = 5.0
"""The first look, once the peers started with this one have claimed their chains."""

UNSHARED_PEERS = Gauge(
    "gateway_quota_unshared_peers",
    "Other live gateway processes on this database while quota counters are in-process "
    "(no GATEWAY_REDIS_URL): each admits a customer's full limits",
    multiprocess_mode="livemax",
)


class UnsharedPeerWatch:
    def __init__(
        self,
        engine: AsyncEngine,
        own_chain: Callable[[], str | None],
        clock: Callable[[], datetime],
        interval_s: float,
        lease_s: float,
    ) -> None:
        self._engine = engine
        self._own_chain = own_chain
        self._clock = clock
        self._interval_s = interval_s
        self._lease_s = lease_s
        self._task = BackgroundTask("quota-peer-watch")
        self.peers: list[str] = []
        """The other live chains at the last check: one per other serving process."""

    async def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        await asyncio.sleep(min(FIRST_CHECK_S, self._interval_s))
        await every(self._interval_s, self.check, log, "quota peer check", first_at_once=True)

    async def check(self) -> list[str]:
        """One look at the chain leases; the other live chains, also kept in ``peers``."""
        own = self._own_chain()
        if own is None:
            return self.peers  # this writer holds no chain now: it cannot tell its own apart
        async with self._engine.connect() as conn:
            live = await live_chains(conn, self._clock(), self._lease_s)
        peers = [chain for chain in live if chain != own]
        if peers:  # logged before it shows anywhere else, so the log never lags the gauge
            log.error(
                "%d other gateway process(es) serve this database (audit chains %s) and "
                "GATEWAY_REDIS_URL is not set: each process keeps its own quota counters, so "
                "a customer gets up to %d times its requests_per_minute, tokens and "
                "concurrent_streams. Set GATEWAY_REDIS_URL (one Redis for every replica), "
                "or run a single gateway process",
                len(peers), ", ".join(peers), len(peers) + 1,
            )  # fmt: skip
        UNSHARED_PEERS.set(len(peers))
        self.peers = peers
        return peers
