"""``GET /v1/models`` counts as a request against the caller's request quota
(the default bucket of its effective tier), as every other proxied call does:
past the limit it is 429 in the caller's API shape, recorded, and it shares
the window with the caller's other requests (docs/quotas.md)."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import PUBLIC_PERSON, US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
XFF = {"x-forwarded-for": US_IP}
PUBLIC_RPM = 20  # policies/quotas.yaml: public default requests_per_minute


def test_models_list_is_counted_against_the_request_quota(gateway: Proc, admin: Admin) -> None:
    key = admin.customer_with_key(**PUBLIC_PERSON)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                           default_headers=XFF)  # fmt: skip
    statuses: list[int] = []
    limits: set[str | None] = set()
    for _ in range(2 * PUBLIC_RPM):
        try:
            listed = client.models.with_raw_response.list()
            statuses.append(listed.status_code)
            limits.add(listed.headers.get("x-ratelimit-limit-requests"))
        except openai.RateLimitError as exc:
            statuses.append(exc.status_code)
            assert exc.response.headers["retry-after"].isdigit()
            refused_id = exc.response.headers["x-gateway-decision-id"]
    assert statuses == [200] * PUBLIC_RPM + [429] * PUBLIC_RPM, statuses
    assert limits == {str(PUBLIC_RPM)}  # the quota headers every allowed answer carries

    # Recorded as a quota refusal, and the window is the one chats spend too.
    record = admin.http.get(f"/admin/v1/decisions/{refused_id}").json()
    assert record["status"] == 429 and record["rule_ids"] == ["quota-exceeded"], record
    chat = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10,
                      headers={**XFF, "authorization": f"Bearer {key}"},
                      json={"model": "haiku-lite",
                            "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert chat.status_code == 429, chat.text
    # In Anthropic's shape for an Anthropic client.
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0,
                                 default_headers=XFF)  # fmt: skip
    with pytest.raises(anthropic.RateLimitError):
        claude.models.list()
