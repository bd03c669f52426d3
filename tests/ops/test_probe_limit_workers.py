"""The limit on unauthenticated refusals holds across workers (its counts are
in Redis, as the quota counters are), and every refusal past it is accounted
for in the workers' summary records, written at shutdown at the latest."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.ops.helpers import TRUSTED
from tests.support.processes import GatewayConfig, Proc, start_gateway
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PROBER_IP = "9.9.4.4"
LIMIT = 5
WINDOW = 10
PROBES = 30


def test_two_workers_on_redis_record_the_limit_once_and_summarise_the_rest(
    tmp_path: Path, standin: Proc, redis: RedisServer
) -> None:
    env = {**TRUSTED, "GATEWAY_REDIS_URL": redis.url,
           "GATEWAY_UNAUTHENTICATED_LIMIT": str(LIMIT),
           "GATEWAY_UNAUTHENTICATED_WINDOW_SECONDS": str(WINDOW)}  # fmt: skip
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env, workers=2)
    gateway = start_gateway(cfg)
    try:
        while time.time() % WINDOW > 0.5:  # the burst in one fixed window
            time.sleep(0.05)
        # A new connection each: the kernel spreads them over both workers.
        statuses = [httpx.post(f"{gateway.url}/v1/chat/completions", json={}, timeout=10,
                               headers={"x-forwarded-for": PROBER_IP,
                                        "authorization": "Bearer gk_0123456789abcdef_nope"}
                               ).status_code for _ in range(PROBES)]  # fmt: skip
    finally:
        gateway.stop()  # the open window's summaries are written on the way out
    assert statuses == [401] * LIMIT + [429] * (PROBES - LIMIT), statuses

    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        rows = conn.execute("SELECT node_id, kind, body FROM audit_records "
                            "WHERE kind IN ('decision', 'probes_limited')").fetchall()  # fmt: skip
    decisions = [(node, orjson.loads(body)) for node, kind, body in rows if kind == "decision"]
    summaries = [(node, orjson.loads(body)) for node, kind, body in rows
                 if kind == "probes_limited"]  # fmt: skip
    probed = [r for _, r in decisions if r["client_ip"] == PROBER_IP]
    assert len(probed) == LIMIT, probed
    assert sum(s["payload"]["refused"] for _, s in summaries) == PROBES - LIMIT, summaries
    assert all(s["payload"]["client_ip"] == PROBER_IP for _, s in summaries)
    chains = {node for node, _ in decisions + summaries}
    assert len(chains) == 2, f"one worker answered them all: {chains}"
    # One summary per address, window and worker at most.
    assert len(summaries) == len({node for node, _ in summaries}), summaries
