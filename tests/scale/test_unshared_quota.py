"""Two replicas on one PostgreSQL without Redis: each keeps its own quota
counters, so a customer gets twice its limits. Neither can tell at start-up
(``serve`` refuses only ``--workers N``), but the audit chain leases show the
other: each says so in ``/readyz``, ``/metrics`` and an ERROR log line, and
stays ready (failing readiness would take every replica out at once)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ops.helpers import TRUSTED, metric, scrape
from tests.support.postgres_server import PostgresServer, migrated_database
from tests.support.processes import GatewayConfig, Proc, start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]
CHECK_S = 1.0
"""GATEWAY_QUOTA_PEER_CHECK_SECONDS here (30 by default); the first check is at most this late."""
BOUND_S = 10 * CHECK_S
"""Generous for a loaded machine: a pass takes about one interval."""


def _readyz(replica: Proc) -> tuple[int, dict[str, Any]]:
    response = httpx.get(replica.url + "/readyz", timeout=10)
    return response.status_code, response.json()


def _until_peers(replica: Proc, expected: int) -> dict[str, Any]:
    """``/readyz`` once it counts ``expected`` unshared peers; fails past ``BOUND_S``."""
    deadline = time.monotonic() + BOUND_S
    while True:
        status, body = _readyz(replica)
        if body.get("quota_unshared_peers") == expected or time.monotonic() > deadline:
            assert body.get("quota_unshared_peers") == expected, body
            assert status == 200, body  # information only: still ready
            return body
        time.sleep(0.1)


def test_replicas_without_redis_see_each_other(
    tmp_path: Path, postgres: PostgresServer, standin: Proc
) -> None:
    env = {**TRUSTED, "GATEWAY_DATABASE_URL": migrated_database(postgres),
           "GATEWAY_QUOTA_PEER_CHECK_SECONDS": str(CHECK_S), "GATEWAY_LOG_LEVEL": "info"}
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env)
    a = start_gateway(cfg)
    b: Proc | None = None
    try:
        b = start_gateway(cfg)
        for replica in (a, b):
            body = _until_peers(replica, 1)
            assert body["checks"]["quota_counters_shared"] is False
            assert metric(scrape(replica.url), "gateway_quota_unshared_peers") == 1
            assert "GATEWAY_REDIS_URL is not set" in replica.output()
        assert b.stop() == 0  # a clean stop releases its chain lease
        body = _until_peers(a, 0)
        assert body["checks"]["quota_counters_shared"] is True
        assert metric(scrape(a.url), "gateway_quota_unshared_peers") == 0
    finally:
        a.stop()
        if b is not None:
            b.stop()
