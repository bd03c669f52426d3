"""``gateway serve --workers 2``: one metrics view over both workers, one
audit chain per worker, and SIGTERM still exits 0. Several workers need
Redis for their quota counters (``tests/ops/test_quota_shared.py``), so every
test here that starts two gives them the session's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gateway.audit.signing import KEY_FILE_NAME
from tests.ops.helpers import CHAT, TRUSTED, US_ENTERPRISE, chat, metric, scrape
from tests.support.processes import (
    REPO,
    Admin,
    GatewayConfig,
    Proc,
    free_port,
    gateway_env,
    start_gateway,
)
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_two_workers_share_metrics_and_keep_their_own_chains(
    tmp_path: Path, standin: Proc, redis: RedisServer
) -> None:
    env = {**TRUSTED, "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "0", "GATEWAY_NODE_ID": "replica-a",
           "GATEWAY_REDIS_URL": redis.url}
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env, workers=2)
    gateway = start_gateway(cfg)
    try:
        key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
        for _ in range(30):
            response = chat(gateway.url, key)
            assert response.status_code == 200
        # Whichever worker answers the scrape, it reports both workers' counts.
        for _ in range(6):
            samples = scrape(gateway.url)
            assert metric(samples, "gateway_requests_total", endpoint=CHAT, status="200") == 30
    finally:
        code = gateway.stop()
    assert code == 0, gateway.output()[-2000:]
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "audit", "verify", "--json"],
        env={"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
             "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    nodes = {n["node_id"] for n in json.loads(result.stdout)["nodes"]}
    assert nodes == {"replica-a", "replica-a-2"}


EXTRA_RULE = """
  - id: workers-test-deny
    effect: deny
    when: {customer_in: [cus_workers_policy]}
    reason: Added by the workers test.
"""


def test_changes_reach_every_process_within_a_second(tmp_path: Path, standin: Proc) -> None:
    """Two gateways on one SQLite file, no Redis, no policy file watch: no bus
    connects them, the CLI tells no one, and a reload through the admin API
    reaches one of them. (Two workers of one ``serve`` need Redis now, which
    brings a bus; two processes are what still runs without one.) Both cache
    keys for 30 s; the change feed (each process reads ``admin_actions`` every
    second) is what makes a key revoked with the CLI, and a policy reloaded
    through one process, hold on both."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    env = {**TRUSTED, "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "0", "GATEWAY_POLICY_DIR": str(policies),
           "GATEWAY_POLICY_WATCH": "false"}
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env)
    gateways = [start_gateway(cfg)]
    try:
        gateways.append(start_gateway(cfg))
        urls = [g.url for g in gateways] * 15
        admin = Admin(gateways[0].url)
        key = admin.customer_with_key(**US_ENTERPRISE)
        # Both processes serve (and cache) the key.
        assert all(chat(url, key).status_code == 200 for url in urls)
        revoke = subprocess.run(
            [sys.executable, "-m", "gateway.cli.main", "keys", "revoke", key.split("_")[1]],
            env={"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
                 "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert revoke.returncode == 0, revoke.stdout + revoke.stderr
        time.sleep(1.5)  # one poll interval (1 s), and the poll itself
        statuses = [chat(url, key).status_code for url in urls]
        assert statuses == [401] * 30, statuses

        target = admin.customer_with_key(**{**US_ENTERPRISE, "id": "cus_workers_policy"})
        assert all(chat(url, target).status_code == 200 for url in urls)
        rules = policies / "rules.yaml"
        rules.write_text(rules.read_text().rstrip("\n") + "\n" + EXTRA_RULE)
        reload = admin.http.post("/admin/v1/policy/reload")
        assert reload.status_code == 200, reload.text
        time.sleep(1.5)
        answers = [chat(url, target) for url in urls]
        assert [a.status_code for a in answers] == [403] * 30
        assert {a.headers["x-gateway-policy-version"] for a in answers} == {
            reload.json()["version"]
        }
        # The admin log says who reloaded, from which version to which.
        logged = admin.http.get("/admin/v1/admin-actions", params={"target_type": "policy"})
        [entry] = logged.json()["items"]
        assert entry["action"] == "policy.reload" and entry["actor"] == "bootstrap"
        assert entry["after"] == {"version": reload.json()["version"]}
        assert entry["before"]["version"] != entry["after"]["version"]
    finally:
        for gateway in gateways:
            assert gateway.stop() == 0, gateway.output()[-2000:]


# Libraries a serving worker must not import up front (memory per worker):
# the command line's, and those only some workers need, imported on first use
# (sanctions name screening, the admin brute-force limiter, WebSockets, the
# PostgreSQL dialect on a SQLite deployment), FastAPI's pydantic v1 probe, and
# cryptography (~9 MB: a worker signs checkpoints with the OpenSSL the ssl
# module has loaded already, gateway.audit.ed25519; verifying, done by the CLI
# and an admin route, imports it then).
_NOT_IN_A_WORKER = ("typer", "rich", "alembic", "gateway.cli", "rapidfuzz", "limits",
                    "websockets", "sqlalchemy.dialects.postgresql", "pydantic.v1",
                    "cryptography")


def test_the_serving_process_does_not_carry_the_cli(tmp_path: Path) -> None:
    """`gateway serve` execs `python -m gateway.worker`: its import graph must
    stay free of the command line's libraries and of those only some workers
    use. The probe runs the worker module as a spawned worker's main module
    (``__mp_main__``, what uvicorn's children see), then loads uvicorn's config
    with the worker's options, which builds the app as a worker does (not its
    lifespan start-up)."""
    probe = (
        "import runpy, sys, uvicorn\n"
        "worker = runpy.run_module('gateway.worker', run_name='__mp_main__')\n"
        "config = uvicorn.Config('gateway.asgi:app_from_env', factory=True,\n"
        "                        **worker['SERVER_OPTIONS'])\n"
        "config.load()\n"  # what uvicorn imports for the worker's settings
        "assert 'gateway.admin.customers' in sys.modules  # the app was built\n"
        f"print(sorted(m for m in {_NOT_IN_A_WORKER!r} if sys.modules.get(m) is not None))"
    )
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9",
           "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=False, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_that_cannot_start_stops_serve_with_exit_3(
    tmp_path: Path, workers: int, redis: RedisServer
) -> None:
    """A start-up failure the pre-flight does not look for: the generated
    audit signing key beside the database is corrupt (the pre-flight checks an
    operator-given GATEWAY_AUDIT_SIGNING_KEY, and each worker loads the
    generated one in its lifespan). One worker or two, `gateway serve` must
    end, exit 3 (uvicorn's start-up failure code), and leave the worker's
    error on stderr, not exit 0 or restart it forever."""
    (tmp_path / KEY_FILE_NAME).write_text("not a PEM key\n")
    cfg = GatewayConfig(tmp=tmp_path, upstream_url="http://127.0.0.1:9",
                        env={"GATEWAY_REDIS_URL": redis.url})  # fmt: skip
    cmd = [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(free_port()),
           "--workers", str(workers)]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=tmp_path, env=gateway_env(cfg), capture_output=True,
                            text=True, check=False, timeout=90)  # fmt: skip
    assert result.returncode == 3, result.stderr[-3000:]
    assert time.monotonic() - started < 60
    assert "SigningKeyError" in result.stderr and KEY_FILE_NAME in result.stderr


def test_a_bundle_that_does_not_validate_is_refused_before_any_worker_starts(
    tmp_path: Path,
) -> None:
    """Exit 2 naming the variable and every file:line problem, no traceback."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    (policies / "rules.yaml").write_text("rules: [unclosed\n")
    cfg = GatewayConfig(tmp=tmp_path, upstream_url="http://127.0.0.1:9",
                        env={"GATEWAY_POLICY_DIR": str(policies)})  # fmt: skip
    cmd = [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(free_port()),
           "--workers", "2"]  # fmt: skip
    result = subprocess.run(cmd, cwd=tmp_path, env=gateway_env(cfg), capture_output=True,
                            text=True, check=False, timeout=90)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "GATEWAY_POLICY_DIR" in output and "rules.yaml:2" in output
    assert "Traceback" not in output


def test_a_worker_that_dies_after_start_up_is_replaced(
    tmp_path: Path, standin: Proc, redis: RedisServer
) -> None:
    """Only a failed start-up stops the supervisor: a serving worker killed
    later is replaced, the gateway keeps serving, and SIGTERM still exits 0."""
    env = {**TRUSTED, "GATEWAY_REDIS_URL": redis.url}
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env, workers=2)
    gateway = start_gateway(cfg)
    try:
        supervisor = psutil.Process(gateway.proc.pid)
        before = {child.pid for child in _workers(supervisor)}
        assert len(before) == 2
        os.kill(min(before), signal.SIGKILL)
        deadline = time.monotonic() + 30
        after = before
        while time.monotonic() < deadline:
            after = {child.pid for child in _workers(supervisor)}
            if len(after) == 2 and after != before:
                break
            time.sleep(0.2)
        assert len(after) == 2 and min(before) not in after, (before, after)
        key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
        assert all(chat(gateway.url, key).status_code == 200 for _ in range(10))
        assert gateway.proc.poll() is None
    finally:
        code = gateway.stop()
    assert code == 0, gateway.output()[-2000:]


def _workers(supervisor: psutil.Process) -> list[psutil.Process]:
    """The supervisor's serving children (multiprocessing's resource tracker is a child too)."""
    return [child for child in supervisor.children()
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
            and "resource_tracker" not in " ".join(child.cmdline())]  # fmt: skip
