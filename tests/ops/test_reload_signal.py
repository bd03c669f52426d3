"""SIGHUP reloads the policy bundle, as daemons do (``systemctl reload``,
``kill -HUP``), in every worker, and stops nothing.

The signal's default action is to terminate: a gateway that did not handle it
died on the spot, with no drain and no final checkpoint (an unsigned tail that
``audit verify`` reports), and uvicorn's supervisor answered it under
``--workers N`` by replacing every worker, each draining with ``/readyz`` false.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.ops.helpers import TRUSTED, US_ENTERPRISE, chat
from tests.ops.test_workers import EXTRA_RULE, _workers
from tests.support.processes import REPO, Admin, GatewayConfig, Proc, start_gateway
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_the_policy_in_every_worker(
    tmp_path: Path, standin: Proc, workers: int, redis: RedisServer
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    # No file watch and no change feed: only the signal can bring the edit in.
    # Two workers need Redis for their quota counters, which brings the bus: a
    # worker's reload is announced there too, so under two workers this shows
    # the signal reloads in place (same pids) rather than that each worker
    # caught it; one worker has no bus and shows the signal alone.
    env = {**TRUSTED, "GATEWAY_POLICY_DIR": str(policies), "GATEWAY_POLICY_WATCH": "false",
           "GATEWAY_CHANGE_POLL_SECONDS": "0"}  # fmt: skip
    if workers > 1:
        env["GATEWAY_REDIS_URL"] = redis.url
    gateway = start_gateway(
        GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env, workers=workers)
    )
    try:
        record = {**US_ENTERPRISE, "id": "cus_workers_policy"}
        target = Admin(gateway.url).customer_with_key(**record)
        old_version = chat(gateway.url, target).headers["x-gateway-policy-version"]
        serving = {p.pid for p in _workers(psutil.Process(gateway.proc.pid))}
        rules = policies / "rules.yaml"
        rules.write_text(rules.read_text().rstrip("\n") + "\n" + EXTRA_RULE)

        os.kill(gateway.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        answers = [chat(gateway.url, target) for _ in range(10)]
        while time.monotonic() < deadline and any(a.status_code != 403 for a in answers):
            time.sleep(0.2)
            answers = [chat(gateway.url, target) for _ in range(10)]

        assert gateway.proc.poll() is None, "SIGHUP stopped the gateway"
        assert [a.status_code for a in answers] == [403] * 10
        versions = {a.headers["x-gateway-policy-version"] for a in answers}
        assert len(versions) == 1 and versions != {old_version}
        # Reloaded in place: the same workers, none restarted.
        assert {p.pid for p in _workers(psutil.Process(gateway.proc.pid))} == serving
    finally:
        code = gateway.stop()
    assert code == 0, gateway.output()[-2000:]
