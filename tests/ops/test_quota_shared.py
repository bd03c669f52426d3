"""Quota counters shared by every process that serves: ``--workers N`` and
replicas on one database must not multiply a customer's limits."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.helpers import TRUSTED, US_PUBLIC, chat
from tests.support.processes import (
    Admin,
    GatewayConfig,
    Proc,
    free_port,
    gateway_env,
    start_gateway,
)
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PUBLIC_RPM = 20
"""``policies/quotas.yaml``: the public tier's default requests_per_minute."""
REQUESTS = 60


def _decisions_by_chain(db: Path, customer_id: str) -> dict[tuple[str, str], int]:
    """{(audit chain, verdict): count}: each worker writes its own chain."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT node_id, decision, count(*) FROM audit_records "
            "WHERE kind = 'decision' AND customer_id = ? GROUP BY node_id, decision",
            (customer_id,))  # fmt: skip
        return {(str(node), str(verdict)): int(n) for node, verdict, n in rows}


def _serve_workers(tmp_path: Path, *extra: str) -> tuple[int | None, str]:
    """``gateway serve --workers 2 ...`` without Redis: its exit code (None if
    it was still serving after 60 s) and its output."""
    cfg = GatewayConfig(tmp=tmp_path, upstream_url="http://127.0.0.1:9", env=dict(TRUSTED))
    cmd = [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(free_port()),
           "--workers", "2", *extra]  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=gateway_env(cfg), stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
        try:
            code: int | None = proc.wait(60)
        except subprocess.TimeoutExpired:
            code = None
            proc.kill()
            proc.wait(10)
    return code, log.read_text(errors="replace")


@pytest.mark.parametrize("extra", [(), ("--demo",)], ids=["plain", "demo"])
def test_two_workers_without_redis_are_refused(tmp_path: Path, extra: tuple[str, ...]) -> None:
    """Before: it served, and a public customer (20 requests a minute) got 38
    of 60 requests admitted, 20 by one worker and 18 by the other. Now exit 2
    before any worker starts, naming the problem and both ways out."""
    code, output = _serve_workers(tmp_path, *extra)
    assert code == 2, output[-3000:]
    said = " ".join(output.split())
    assert "--workers 2 without GATEWAY_REDIS_URL" in said
    assert "up to 2 times" in said
    assert "Set GATEWAY_REDIS_URL" in said and "--workers 1" in said
    assert "Traceback" not in output
    assert not (tmp_path / "gateway.db").exists(), "refused after migrating the database"


def test_two_workers_on_redis_hold_one_limit(
    tmp_path: Path, standin: Proc, redis: RedisServer
) -> None:
    """Each request is a new connection (``chat`` with a URL opens one), so
    the kernel spreads them over both workers; their counters are Redis's."""
    env = {**TRUSTED, "GATEWAY_REDIS_URL": redis.url}
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env, workers=2)
    gateway = start_gateway(cfg)
    try:
        admin = Admin(gateway.url)
        customer = admin.customer(**US_PUBLIC)
        key = admin.key(str(customer["id"]))
        statuses = [chat(gateway.url, key).status_code for _ in range(REQUESTS)]
    finally:
        gateway.stop()
    spread = _decisions_by_chain(tmp_path / "gateway.db", str(customer["id"]))
    assert statuses.count(200) == PUBLIC_RPM, (statuses.count(200), spread)
    assert statuses.count(429) == REQUESTS - PUBLIC_RPM
    assert len({chain for chain, _ in spread}) == 2, f"one worker served them all: {spread}"
