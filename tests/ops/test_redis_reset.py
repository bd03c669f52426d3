"""Redis restarted empty under a running gateway: the quota counters are
lost, and the gateway says so (log, metric, a signed audit record)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.helpers import TRUSTED, US_PUBLIC, chat, metric, scrape
from tests.support.processes import Admin, GatewayConfig, Proc, start_gateway
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture()
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


def _quota_store_records(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT body FROM audit_records WHERE kind = 'quota_store'")
        return [str(r[0]) for r in rows]


def test_counters_lost_with_a_redis_restart_are_recorded(
    tmp_path: Path, own_redis: RedisServer, standin: Proc
) -> None:
    """Seen in the chaos drill: Redis killed and restarted (no persistence,
    as a crashed cache node comes back) under load; the gateway failed closed
    while it was down and recovered by itself, but every customer's window
    started again from zero, so a public customer at its 20 requests a minute
    got 20 more within the same minute, and nothing anywhere said so: no log
    line, no metric, no audit record (the ``quota_store`` record kind existed
    and was never written). An auditor could not tell over-admission from the
    policy's limits. Each replica now watches a marker key; when it is gone
    the counters were lost, and the first replica to notice writes a
    ``quota_store`` record, logs it and counts it."""
    env = {**TRUSTED, "GATEWAY_REDIS_URL": own_redis.url}
    gateway = start_gateway(GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env))
    try:
        key = Admin(gateway.url).customer_with_key(**US_PUBLIC)
        statuses = [chat(gateway.url, key).status_code for _ in range(21)]
        assert statuses == [200] * 20 + [429]
        time.sleep(1.5)  # the marker is in place before the restart
        own_redis.restart()
        # The documented cost of a Redis without persistence: a fresh window.
        deadline = time.monotonic() + 10
        status = chat(gateway.url, key).status_code
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            status = chat(gateway.url, key).status_code
        assert status == 200
        deadline = time.monotonic() + 5
        while not _quota_store_records(tmp_path / "gateway.db") and time.monotonic() < deadline:
            time.sleep(0.2)
        records = _quota_store_records(tmp_path / "gateway.db")
        assert len(records) == 1, "a Redis reset left no quota_store record in the audit log"
        assert '"counters_lost"' in records[0]
        resets = metric(scrape(gateway.url), "gateway_quota_counter_resets_total")
        assert resets == 1
    finally:
        gateway.stop()
