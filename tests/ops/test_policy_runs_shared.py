"""``GATEWAY_ADMIN_POLICY_RUNS_PER_MINUTE`` is one budget per token for the
whole deployment when ``GATEWAY_REDIS_URL`` is set.

The window was kept in each process (``limits``' memory storage), so with
two replicas (or ``--workers 2``) one token ran twice its budget of
``POST /admin/v1/policy/test`` and ``/policy/impact``, each a run of seconds
of CPU. Now the window is in Redis; when Redis cannot answer a run is refused
with 503 ``{"detail": ...}`` (fail closed, as the quotas are), and runs again
once Redis is back.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.ops.helpers import TRUSTED
from tests.support.processes import Admin, GatewayConfig, Proc, start_gateway
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

INVALID = {"files": {"rules.yaml": "rules: [\n"}}
"""A candidate that does not load: the cheapest run there is."""
PER_MINUTE = "3"


def _replicas(tmp_path: Path, standin: Proc, redis_url: str, count: int) -> list[Proc]:
    env = {**TRUSTED, "GATEWAY_REDIS_URL": redis_url,
           "GATEWAY_ADMIN_POLICY_RUNS_PER_MINUTE": PER_MINUTE}  # fmt: skip
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env)
    return [start_gateway(cfg) for _ in range(count)]


def _officer(gateway: Proc) -> dict[str, str]:
    made = Admin(gateway.url).http.post("/admin/v1/tokens",
                                        json={"role": "compliance", "name": "officer"})  # fmt: skip
    assert made.status_code == 201, made.text
    return {"authorization": f"Bearer {made.json()['token']}"}


def _run(gateway: Proc, headers: dict[str, str], path: str = "test") -> httpx.Response:
    return httpx.post(f"{gateway.url}/admin/v1/policy/{path}", headers=headers, json=INVALID,
                      timeout=30)  # fmt: skip


def test_one_token_has_one_budget_across_replicas(
    tmp_path: Path, standin: Proc, redis: RedisServer
) -> None:
    first, second = _replicas(tmp_path, standin, redis.url, 2)
    try:
        headers = _officer(first)
        assert [_run(first, headers).status_code for _ in range(2)] == [200, 200]
        assert _run(second, headers, "impact").status_code == 200
        refused = _run(second, headers)
        assert refused.status_code == 429, refused.text  # before: 200, a budget per replica
        assert "3 policy test/impact runs a minute" in refused.json()["detail"], refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 60, refused.headers
        assert _run(first, headers, "impact").status_code == 429
        # Another token is another caller, on either replica.
        assert _run(second, _officer(second)).status_code == 200
    finally:
        for proc in (first, second):
            proc.stop()


def test_runs_are_refused_while_redis_is_down(tmp_path: Path, standin: Proc) -> None:
    with RedisServer() as redis:
        (gateway,) = _replicas(tmp_path, standin, redis.url, 1)
        try:
            headers = _officer(gateway)
            assert _run(gateway, headers).status_code == 200
            redis.kill()
            refused = _run(gateway, headers)
            # before: 200, counted in this process only
            assert refused.status_code == 503, refused.text
            detail = refused.json()["detail"]
            assert "GATEWAY_REDIS_URL" in detail and "refused" in detail, refused.text
            assert refused.headers["retry-after"] == "1", refused.headers
            assert _run(gateway, headers, "impact").status_code == 503
            redis.start()  # empty: the counts were lost with it
            assert _run(gateway, headers).status_code == 200
        finally:
            gateway.stop()
        said = [line for line in gateway.output().splitlines() if "policy run refused" in line]
        assert said, gateway.output()[-3000:]
