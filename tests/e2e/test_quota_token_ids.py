"""Token-id inputs are reserved against token quotas like the text they stand for.

``/v1/embeddings`` takes ``input`` and ``/v1/completions`` takes ``prompt`` as
token ids (a list of integers, or a list of such lists): each integer is one
input token the upstream reads and bills. The reservation estimated input
from the body's *text* only, so a body of token ids reserved one token while
the model read hundreds of thousands: parallel requests overdrew a token
window by that much before they settled, and on a window smaller than the
input the request was admitted at all, where the same input as text is a 429.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import US_IP, GatewayFactory
from tests.e2e.test_quota_e2e import person_us, small_bundle  # noqa: F401  (fixture)
from tests.support.processes import Admin

pytestmark = pytest.mark.e2e
XFF = {"x-forwarded-for": US_IP}

IDS = [100 + i % 900 for i in range(3000)]
"""3000 input tokens: three times the small bundle's 1000-token minute."""


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/embeddings", {"input": IDS}),
        ("/v1/embeddings", {"input": [IDS[:1500], IDS[1500:]]}),
        ("/v1/completions", {"prompt": IDS, "max_tokens": 5}),
        ("/v1/completions", {"prompt": [IDS[:1500], IDS[1500:]], "max_tokens": 5}),
    ],
    ids=["embeddings-ids", "embeddings-id-lists", "completions-ids", "completions-id-lists"],
)
def test_token_ids_are_reserved_as_input_tokens(
    gateway_factory: GatewayFactory, small_bundle: Path, route: str, body: dict[str, object]  # noqa: F811
) -> None:
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(small_bundle)})
    key = Admin(gateway.url).customer_with_key(**person_us())
    headers = {**XFF, "authorization": f"Bearer {key}"}
    answer = httpx.post(f"{gateway.url}{route}", headers=headers,
                        json={"model": "haiku-lite", **body}, timeout=20)
    assert answer.status_code == 429, answer.text
    assert "tokens_per_minute" in answer.json()["error"]["message"]
    # A short token-id input still fits, and holds what it carries.
    small = httpx.post(f"{gateway.url}/v1/embeddings", headers=headers,
                       json={"model": "haiku-lite", "input": IDS[:400]}, timeout=20)
    assert small.status_code == 200, small.text
    assert int(small.headers["x-ratelimit-remaining-tokens"]) <= 1000 - 400
