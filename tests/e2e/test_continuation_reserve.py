"""A Responses request that continues a stored response reserves its context.

With ``previous_response_id`` the upstream reads the stored conversation again
(its input and its output) as input of the new request and bills it so, but
the body carries only the new turn: the reservation held the new turn's few
tokens. Parallel continuations of one long response each overdrew a token
window by the whole context before they settled (twenty at once: twenty
times it). A continuation now reserves the context the stored response
showed in its usage, streamed or not.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin

pytestmark = pytest.mark.e2e
WINDOW = 100_000
QUOTAS = f"""
quotas:
  public:
    default: {{requests_per_minute: 600, tokens_per_minute: {WINDOW}}}
    agentic: {{requests_per_minute: 0}}
  enterprise:
    default_max_tokens: 100
    default: {{requests_per_minute: 600, tokens_per_minute: {WINDOW}}}
    agentic: {{requests_per_minute: 120, tokens_per_minute: {WINDOW}}}
  research:
    default: {{requests_per_minute: 120}}
  government:
    default: {{requests_per_minute: 1200}}
  defense:
    default: {{requests_per_minute: 1200}}
"""
CONTEXT = 5 + 5000
"""The stand-in's usage for a create answering 5000 output tokens (5 input)."""


@pytest.mark.parametrize("stream", [False, True])
def test_a_continuation_reserves_the_context_it_pulls_in(
    gateway_factory: GatewayFactory, tmp_path: Path, stream: bool
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "quotas.yaml").write_text(QUOTAS)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
    headers = {"authorization": f"Bearer {key}", "x-forwarded-for": US_IP}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=20) as client:
        create = client.post("/v1/responses", headers={"x-standin-output-tokens": "5000"},
                             json={"model": "haiku-lite", "input": "hi", "stream": stream,
                                   "max_output_tokens": 6000})  # fmt: skip
        assert create.status_code == 200, create.text
        if stream:
            first_event = create.text.split("data: ", 1)[1].split("\n", 1)[0]
            response_id = httpx.Response(200, content=first_event).json()["response"]["id"]
        else:
            response_id = create.json()["id"]
        time.sleep(0.5)  # settled (and, streamed, its context recorded) once it ended
        turn = client.post("/v1/responses", json={
            "model": "haiku-lite", "input": "and then?", "previous_response_id": response_id,
            "max_output_tokens": 16})  # fmt: skip
        assert turn.status_code == 200, turn.text
        remaining = int(turn.headers["x-ratelimit-remaining-tokens"])
    # The create settled to its usage; the turn holds the context it continues.
    assert remaining <= WINDOW - CONTEXT - CONTEXT - 16, (remaining, turn.headers)
