"""A request is decided under the bundle in force when it is decided.

The request took its policy snapshot when its headers arrived, and was
decided on it once its body had arrived, up to ``GATEWAY_BODY_READ_TIMEOUT_SECONDS``
later (30 s by default, an hour at most). A reload in between (a new sanctions
rule, a directive in force at once) did not apply to it: a client that opened
requests before the reload and sent their bodies after it was served under the
old bundle, and each record named a policy version that was no longer in
force when it was decided, after the reload's own audit record.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import ADMIN_TOKEN, REPO, Admin

pytestmark = pytest.mark.e2e

DENY_HAIKU = """
  - id: drill-haiku-withdrawn
    effect: deny
    when: {model_in: [haiku-lite]}
    reason: haiku-lite is withdrawn.
"""


def test_a_reload_while_the_body_arrives_decides_the_request(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live),
                                   "GATEWAY_POLICY_WATCH": "false"})  # fmt: skip
    key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    body = orjson.dumps({"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]})
    before = httpx.get(f"{gateway.url}/admin/v1/policy", headers=admin).json()["version"]
    reloaded: dict[str, str] = {}

    def slow_body() -> Iterator[bytes]:
        yield body[:10]  # the headers and a first part are in: the request has started
        with (live / "rules.yaml").open("a") as rules:
            rules.write(DENY_HAIKU)
        answer = httpx.post(f"{gateway.url}/admin/v1/policy/reload", headers=admin, timeout=20)
        assert answer.status_code == 200, answer.text
        reloaded["version"] = answer.json()["version"]
        yield body[10:]

    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", content=slow_body(), timeout=30,
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": US_IP,
                 "content-type": "application/json"},
    )  # fmt: skip
    assert reloaded["version"] != before
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "drill-haiku-withdrawn"
    assert response.headers["x-gateway-policy-version"] == reloaded["version"]
