"""A request that names no output bound is served under its tier's
``default_max_tokens``, and that bound is what is classified, reserved and
forwarded (``facts.with_output_bound``).

Before, leaving ``max_tokens`` out dodged every ``max_tokens_over`` rule (the
long-horizon capability) and let the upstream generate up to the model's limit
against a reservation of the tier default: concurrent requests could overdraw a
token quota by a whole answer each.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e

StandinLog = Callable[[], list[dict[str, object]]]
MESSAGES = [{"role": "user", "content": "hi"}]
PUBLIC_US = {
    "name": "Jo Public",
    "kind": "individual",
    "citizenships": ["US"],
    "residence": "US",
    "kyc_level": "email_verified",
    "tier": "public",
}
# Public answers default to 20,000 tokens, over the bundled long_horizon line
# (max_tokens_over: 16000), and public long-horizon work is denied.
NO_LONG_HORIZON_ON_PUBLIC = """
  - id: no-long-horizon-on-public
    effect: deny
    when: {capability_in: [long_horizon], tier_in: [public]}
    reason: Long-horizon work is not offered on the public tier.
"""


def _post(gateway: Proc, key: str, path: str, body: dict[str, object]) -> httpx.Response:
    headers = {"x-forwarded-for": US_IP, "authorization": f"Bearer {key}"}
    return httpx.post(f"{gateway.url}{path}", json=body, headers=headers, timeout=10)


@pytest.fixture()
def gateway(gateway_factory: GatewayFactory, tmp_path: Path) -> Proc:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    quotas = bundle / "quotas.yaml"
    quotas.write_text(quotas.read_text().replace(
        "public:\n    default_max_tokens: 1024", "public:\n    default_max_tokens: 20000"))
    rules = bundle / "rules.yaml"
    rules.write_text(rules.read_text() + NO_LONG_HORIZON_ON_PUBLIC)
    return gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})


def test_leaving_max_tokens_out_does_not_dodge_a_long_horizon_rule(gateway: Proc) -> None:
    key = Admin(gateway.url).customer_with_key(**PUBLIC_US)
    bounded = _post(gateway, key, "/v1/chat/completions",
                    {"model": "haiku-lite", "messages": MESSAGES, "max_tokens": 500})
    assert bounded.status_code == 200, bounded.text
    unbounded = _post(gateway, key, "/v1/chat/completions",
                      {"model": "haiku-lite", "messages": MESSAGES})
    assert unbounded.status_code == 403, unbounded.text
    assert unbounded.json()["error"]["code"] == "no-long-horizon-on-public"


def test_the_tier_default_is_forwarded_reserved_and_recorded(
    gateway: Proc, standin_log: StandinLog
) -> None:
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    cases = [
        ("/v1/chat/completions", "max_completion_tokens"),
        ("/v1/messages", "max_tokens"),
        ("/v1/responses", "max_output_tokens"),
    ]
    for path, field in cases:
        body: dict[str, object] = {"model": "haiku-lite", "messages": MESSAGES}
        if path == "/v1/responses":
            body = {"model": "haiku-lite", "input": "hi"}
        response = _post(gateway, key, path, body)
        assert response.status_code == 200, (path, response.text)
        forwarded = standin_log()[-1]
        as_served = orjson.dumps({**body, field: 4096})  # the enterprise tier's default
        assert forwarded["body_sha256"] == hashlib.sha256(as_served).hexdigest(), path
        record = admin.http.get(
            f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}").json()
        assert record["quota"]["reserved_tokens"] >= 4096, record["quota"]

    # A bound the client names is forwarded as it came, whichever field names it.
    body = {"model": "haiku-lite", "messages": MESSAGES, "max_tokens": 50}
    assert _post(gateway, key, "/v1/chat/completions", body).status_code == 200
    assert standin_log()[-1]["body_sha256"] == hashlib.sha256(orjson.dumps(body)).hexdigest()
    # An embedding generates nothing: no bound is added.
    body = {"model": "haiku-lite", "input": "hi"}
    assert _post(gateway, key, "/v1/embeddings", body).status_code == 200
    assert standin_log()[-1]["body_sha256"] == hashlib.sha256(orjson.dumps(body)).hexdigest()
