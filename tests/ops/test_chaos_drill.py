"""The chaos drill: concurrent clients (OpenAI and Anthropic shapes, streamed
and not, allowed and denied) while a fault is injected, then the audit
promise judged from the outside (``tests/support/chaos.py``):

* every request the upstream received has its decision committed, as allow;
* every answer carrying ``x-gateway-decision-id`` (503s aside, whose id names
  a record never written) has that record, with the verdict the client got;
* outage answers are 503 in the client's API shape, never a 500 or a hang;
* the gateway recovers by itself, and ``gateway audit verify`` passes.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import psutil
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.ops.helpers import TRUSTED, US_ENTERPRISE
from tests.ops.test_workers import _workers
from tests.support import chaos
from tests.support.postgres_server import PostgresServer, migrated_database
from tests.support.processes import REPO, Admin, GatewayConfig, Proc, start_gateway
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _unlimited_policies(tmp: Path) -> Path:
    """The bundled policy with the enterprise request quota out of the way:
    the drill is about the audit log, and 429s would be most of its answers."""
    policies = tmp / "policies"
    shutil.copytree(REPO / "policies", policies)
    quotas = policies / "quotas.yaml"
    text = quotas.read_text()
    limited = "default: {requests_per_minute: 600, tokens_per_minute: 400000}"
    assert limited in text
    quotas.write_text(text.replace(
        limited, "default: {requests_per_minute: 1000000, tokens_per_minute: 1000000000}"))
    return policies


def _clear(standin: Proc) -> None:
    httpx.delete(f"{standin.url}/_standin/requests", timeout=10)


def test_a_worker_killed_under_load_loses_no_acknowledged_decision(
    tmp_path: Path, standin: Proc, redis: RedisServer
) -> None:
    """SIGKILL of one of two workers under 16 clients: the supervisor replaces
    it, its clients' cut connections are the only casualties, and nothing it
    acknowledged or forwarded is missing. (Held when the drill first ran: kept
    as the regression test of the central promise on SQLite.)"""
    _clear(standin)
    # Two workers share their quota counters in Redis (or `serve` refuses to start).
    env = {**TRUSTED, "GATEWAY_POLICY_DIR": str(_unlimited_policies(tmp_path)),
           "GATEWAY_REDIS_URL": redis.url}
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env, workers=2)
    gateway = start_gateway(cfg)
    try:
        key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
        load = chaos.Load(gateway.url, key, clients=16).start()
        load.wait_for(200, 50)
        workers = _workers(psutil.Process(gateway.proc.pid))
        assert len(workers) == 2
        workers[0].kill()
        deadline = time.monotonic() + 20
        while len(_workers(psutil.Process(gateway.proc.pid))) < 2:
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.2)
        load.wait_for(200, 100)
        answers = load.stop()
    finally:
        code = gateway.stop()
    assert code == 0, gateway.output()[-2000:]
    forwarded = chaos.forwarded_ids(standin.url)
    verdicts = chaos.sqlite_verdicts(tmp_path / "gateway.db")
    assert chaos.problems(answers, forwarded, verdicts, allow_no_answer=True) == []
    verified = chaos.verify({"GATEWAY_DATABASE_URL":
                             f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"}, tmp_path)
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-2000:]


def test_postgres_crash_under_load(
    tmp_path: Path, own_postgres: PostgresServer, standin: Proc
) -> None:
    """PostgreSQL crashed (immediate shutdown) and restarted under 16 clients.
    Before the drill's fixes this run lost acknowledged and forwarded
    decisions (the test server runs with synchronous_commit=off), and a
    longer outage killed the audit writer for good (1024 failed batches)."""
    _clear(standin)
    url = migrated_database(own_postgres)
    key_file = tmp_path / "audit.pem"
    key_file.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    env = {**TRUSTED, "GATEWAY_DATABASE_URL": url, "GATEWAY_AUDIT_SIGNING_KEY": str(key_file),
           "GATEWAY_POLICY_DIR": str(_unlimited_policies(tmp_path))}  # fmt: skip
    gateway = start_gateway(GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env))
    try:
        key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
        load = chaos.Load(gateway.url, key, clients=16).start()
        load.wait_for(200, 50)
        own_postgres.crash()
        load.wait_for(503, 100)
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["database"] is False
        own_postgres.resume()
        load.wait_for(200, 100)  # recovered by itself
        answers = load.stop()
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
        assert ready.json()["checks"]["database"] is True
        assert ready.json()["checks"]["audit"] is True
    finally:
        code = gateway.stop()
    assert code == 0, gateway.output()[-2000:]
    forwarded = chaos.forwarded_ids(standin.url)
    name = url.rsplit("/", 1)[1]
    verdicts = chaos.postgres_verdicts(lambda sql: own_postgres.psql(sql, database=name))
    assert chaos.problems(answers, forwarded, verdicts) == []
    verified = chaos.verify({"GATEWAY_DATABASE_URL": url,
                             "GATEWAY_AUDIT_SIGNING_KEY": str(key_file)}, tmp_path)
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-2000:]
