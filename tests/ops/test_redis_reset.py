"""Redis restarted empty under running gateways: the quota counters are
lost; the gateways say so (log, metric, a signed audit record) and each puts
back what it admitted, so the windows go on where they were."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.helpers import TRUSTED, US_PUBLIC, chat, metric, scrape
from tests.support.processes import REPO, Admin, GatewayConfig, Proc, start_gateway
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
DAILY_TOKENS = 400


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


def _small_day_policy(tmp: Path) -> Path:
    """The shipped policies with a public day small enough to reach in a test:
    a reservation of ~16 + prompt tokens, 19 charged per stand-in answer."""
    policies = tmp / "policies"
    shutil.copytree(REPO / "policies", policies)
    quotas = policies / "quotas.yaml"
    text = quotas.read_text()
    old = "default_max_tokens: 1024\n    default: {requests_per_minute: 20, tokens_per_day: 200000}"
    assert old in text
    new = (
        "default_max_tokens: 16\n"
        f"    default: {{requests_per_minute: 1000, tokens_per_day: {DAILY_TOKENS}}}"
    )
    quotas.write_text(text.replace(old, new))
    return policies


def _day_used(admin: Admin, customer_id: str) -> int:
    report = admin.http.get(f"/admin/v1/customers/{customer_id}/usage")
    assert report.status_code == 200, report.text
    for bucket in report.json()["buckets"]:
        if bucket["kind"] == "tokens_per_day":
            return int(bucket["used"])
    raise AssertionError(report.text)


def _status_after_outage(url: str, key: str) -> int:
    """The first answer that is not the outage's 503."""
    deadline = time.monotonic() + 10
    status = chat(url, key).status_code
    while status == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        status = chat(url, key).status_code
    return status


def test_counters_lost_with_a_redis_restart_are_put_back(
    tmp_path: Path, own_redis: RedisServer, standin: Proc
) -> None:
    """Seen in the chaos drill: Redis killed and restarted (no persistence,
    as a crashed cache node comes back) under load; every customer's window
    started again from zero, so a customer at its daily token limit got a
    second day's worth (and until the reset was recorded, nothing said so).
    Now each gateway process keeps its own share of the open windows and puts
    it back when it finds the counters lost: here two gateways, a customer at
    its limit stays refused at both, one at about half keeps only the rest,
    and the reset is still recorded once."""
    env = {**TRUSTED, "GATEWAY_REDIS_URL": own_redis.url,
           "GATEWAY_POLICY_DIR": str(_small_day_policy(tmp_path))}  # fmt: skip
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env)
    gateways = [start_gateway(cfg), start_gateway(cfg)]
    try:
        urls = [g.url for g in gateways]
        admin = Admin(urls[0])
        full, half = (str(admin.customer(**US_PUBLIC)["id"]) for _ in range(2))
        full_key, half_key = admin.key(full), admin.key(half)
        statuses = [chat(urls[i % 2], full_key).status_code for i in range(40)]
        assert 200 in statuses and statuses[-1] == 429, statuses
        for i in range(8):  # four through each gateway
            assert chat(urls[i % 2], half_key).status_code == 200
        full_used, half_used = _day_used(admin, full), _day_used(admin, half)
        assert full_used > DAILY_TOKENS - 40 and 100 < half_used < DAILY_TOKENS * 3 // 4

        time.sleep(1.5)  # each watch has looked at the marker
        own_redis.restart()
        assert [_status_after_outage(url, full_key) for url in urls] == [429, 429]
        deadline = time.monotonic() + 5  # each share comes back with its gateway's look
        while _day_used(admin, half) != half_used and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _day_used(admin, full) == full_used
        assert _day_used(admin, half) == half_used
        # The half-way customer still has the rest of its day, and no more.
        more = [chat(urls[i % 2], half_key).status_code for i in range(40)]
        assert more.count(200) > 0 and more[-1] == 429
        assert _day_used(admin, half) <= DAILY_TOKENS

        deadline = time.monotonic() + 5
        while not _quota_store_records(tmp_path / "gateway.db") and time.monotonic() < deadline:
            time.sleep(0.2)
        records = _quota_store_records(tmp_path / "gateway.db")
        assert len(records) == 1, "a Redis reset left no (or more than one) quota_store record"
        assert '"counters_lost"' in records[0]
        resets = [metric(scrape(url), "gateway_quota_counter_resets_total") for url in urls]
        assert resets == [1, 1]  # every process noticed, and put back its share
    finally:
        for g in gateways:
            g.stop()
