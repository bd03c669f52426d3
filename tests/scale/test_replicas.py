"""Two replicas (two ``gateway serve`` processes) on one PostgreSQL and one
Redis, behind the test's own round-robin client.

Caches are kept for 30 s (the default TTL), so everything that takes effect
on the other replica within 1 s went over the cluster bus: Redis pub/sub, or
PostgreSQL LISTEN/NOTIFY when no Redis is configured.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.ops.helpers import TRUSTED, US_ENTERPRISE, US_PUBLIC, chat
from tests.support.postgres_server import PostgresServer, migrated_database
from tests.support.processes import REPO, Admin, GatewayConfig, Proc, start_gateway
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]
BOUND_S = 1.0
EXTRA_RULE = """
  - id: scale-test-deny
    effect: deny
    when: {customer_in: [cus_scale_policy]}
    reason: Added by the scale-out test.
"""


def within(bound: float, check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` holds; fails past ``bound``."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > bound:
            raise AssertionError(f"not in force within {bound} s")
        time.sleep(0.02)


class RoundRobin:
    def __init__(self, replicas: list[Proc]) -> None:
        self.urls = [r.url for r in replicas]
        self._next = itertools.cycle(self.urls)

    def chat(self, key: str, **kw: object) -> httpx.Response:
        return chat(next(self._next), key, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["redis", "postgres-notify"])
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresServer,
    redis: RedisServer, standin: Proc,
) -> Iterator[tuple[list[Proc], str, Path]]:  # fmt: skip
    url = migrated_database(postgres)
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    env = {
        **TRUSTED,
        "GATEWAY_DATABASE_URL": url,
        "GATEWAY_POLICY_DIR": str(policies),
        # No file watch and no change feed: only the bus can carry a change
        # to the other replica within the 1 s bound.
        "GATEWAY_POLICY_WATCH": "false",
        "GATEWAY_CHANGE_POLL_SECONDS": "0",
        "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "0",
        "GATEWAY_LOG_LEVEL": "info",
    }
    if request.param == "redis":
        subprocess.run(["redis-cli", "-p", str(redis.port), "FLUSHALL"], check=False,
                       capture_output=True)  # fmt: skip
        env["GATEWAY_REDIS_URL"] = redis.url
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env)
    replicas = [start_gateway(cfg), start_gateway(cfg)]
    try:
        yield replicas, url, policies
    finally:
        for replica in replicas:
            replica.stop()


def test_two_replicas_act_as_one(
    cluster: tuple[list[Proc], str, Path], request: pytest.FixtureRequest
) -> None:
    (a, b), url, policies = cluster
    admin_a, admin_b = Admin(a.url), Admin(b.url)

    # A key created through A works on B at once.
    customer = admin_a.customer(**US_ENTERPRISE)
    key = admin_a.key(str(customer["id"]))
    within(BOUND_S, lambda: chat(b.url, key).status_code == 200)

    # Revoked through A: refused on both within 1 s (B had it cached for 30 s).
    assert chat(a.url, key).status_code == chat(b.url, key).status_code == 200
    key_id = key.split("_")[1]
    assert admin_a.http.delete(f"/admin/v1/keys/{key_id}").status_code in (200, 204)
    waited = within(BOUND_S, lambda: chat(b.url, key).status_code == 401)
    assert chat(a.url, key).status_code == 401
    print(f"revocation in force on B after {waited * 1000:.0f} ms")

    # A customer suspended through B is refused on A within 1 s.
    key2 = admin_a.key(str(customer["id"]))
    assert chat(a.url, key2).status_code == 200
    suspend = {"status": "suspended"}
    patch = admin_b.http.patch(f"/admin/v1/customers/{customer['id']}", json=suspend)
    assert patch.status_code == 200, patch.text
    within(BOUND_S, lambda: chat(a.url, key2).status_code == 403)

    # An admin token revoked through A stops working on B within 1 s.
    made = admin_a.http.post("/admin/v1/tokens", json={"role": "auditor", "name": "scale"})
    token = made.json()["token"]
    as_token = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{b.url}/admin/v1/audit/public-key", headers=as_token).status_code != 401
    assert admin_a.http.delete(f"/admin/v1/tokens/{made.json()['id']}").status_code == 200
    within(BOUND_S, lambda: httpx.get(f"{b.url}/admin/v1/audit/public-key",
                                      headers=as_token).status_code == 401)  # fmt: skip

    # A policy reload through A is in force on B (which validated it itself).
    target = admin_a.customer_with_key(**{**US_ENTERPRISE, "id": "cus_scale_policy"})
    assert chat(b.url, target).status_code == 200
    rules = policies / "rules.yaml"
    rules.write_text(rules.read_text().rstrip("\n") + "\n" + EXTRA_RULE)
    reload = admin_a.http.post("/admin/v1/policy/reload")
    assert reload.status_code == 200, reload.text
    version = reload.json()["version"]
    within(BOUND_S, lambda: chat(b.url, target).status_code == 403)
    denied = chat(b.url, target)
    assert denied.headers["x-gateway-policy-version"] == version
    assert denied.json()["error"]["code"] == "scale-test-deny"

    if request.node.callspec.params["cluster"] == "redis":
        # Quotas hold as one: the public tier's 20 requests a minute, across both.
        public = admin_a.customer_with_key(**US_PUBLIC)
        rr = RoundRobin([a, b])
        statuses = [rr.chat(public).status_code for _ in range(26)]
        assert statuses.count(200) == 20 and statuses.count(429) == 6, statuses

    for replica in (a, b):
        assert replica.stop() == 0
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "audit", "verify", "--json"],
        env={"GATEWAY_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False, cwd=a.log_path.parent if a.log_path else None,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    chains = [n for n in report["nodes"] if n["records"] > 0]
    assert len(chains) == 2, report["nodes"]  # one chain per replica, both verified
