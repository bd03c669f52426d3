"""The Message Batches routes' HTTP surface: HEAD wherever GET is served (the
GET's status and headers, no content, decided and recorded like the GET: RFC
9110 section 9.3.2), and what the list costs upstream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
BATCHES = "/v1/messages/batches"
VARYING = {"date", "x-gateway-decision-id", "request-id", "x-request-id"}


def one(custom_id: str) -> Any:
    return {"custom_id": custom_id, "params": {
        "model": "haiku-lite", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
    }}  # fmt: skip


def same(headers: httpx.Headers) -> dict[str, str]:
    """What a GET and its HEAD must agree on (each is a request: the quota moves)."""
    return {k: v for k, v in headers.items()
            if k not in VARYING and "ratelimit" not in k}  # fmt: skip


def test_head_on_batch_routes_is_the_get_without_content(gateway: Proc, admin: Admin) -> None:
    key = admin.customer_with_key(**US_ENTERPRISE)
    owner = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0,
                                default_headers={"x-forwarded-for": US_IP})  # fmt: skip
    batch = owner.messages.batches.create(requests=[{"custom_id": "q", "params": {
        "model": "haiku-lite", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
    }}])  # fmt: skip
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "x-forwarded-for": US_IP}
    for path in (BATCHES, f"{BATCHES}/{batch.id}", f"{BATCHES}/{batch.id}/results"):
        got = httpx.get(f"{gateway.url}{path}", headers=headers, timeout=10)
        head = httpx.head(f"{gateway.url}{path}", headers=headers, timeout=10)
        assert (head.status_code, got.status_code) == (200, 200), (path, head.text)
        assert head.content == b""
        assert head.headers.get("content-length") == got.headers.get("content-length"), path
        assert same(head.headers) == same(got.headers), path
        record = admin.http.get(f"/admin/v1/decisions/{head.headers['x-gateway-decision-id']}")
        assert record.json()["decision"] == "allow", (path, record.text)
    # A stranger's HEAD is the stranger's GET: 404, recorded, never forwarded.
    stranger = {**headers, "x-api-key": admin.customer_with_key(**US_ENTERPRISE)}
    refused = httpx.head(f"{gateway.url}{BATCHES}/{batch.id}", headers=stranger, timeout=10)
    assert refused.status_code == 404 and refused.content == b""
    assert refused.headers["x-gateway-decision-id"]
    # Where GET is not allowed, neither is HEAD; where GET is, Allow says HEAD too.
    put = httpx.put(f"{gateway.url}{BATCHES}/{batch.id}/results", headers=headers, timeout=10)
    assert put.status_code == 405 and put.headers["allow"] == "GET, HEAD", put.headers
    cancel = httpx.head(f"{gateway.url}{BATCHES}/{batch.id}/cancel", headers=headers, timeout=10)
    assert cancel.status_code == 405 and cancel.headers["allow"] == "POST", cancel.headers


def test_a_list_page_is_fetched_in_two_upstream_calls_not_one_per_batch(
    gateway: Proc, admin: Admin, standin_log: Callable[[], list[dict[str, object]]]
) -> None:
    """The page comes from the caller's bindings; its batches' current state
    from one upstream list call around them (the oldest by id), not a
    retrieve per batch. Another customer's batches, interleaved upstream, are
    never shown."""
    mine, theirs = (anthropic.Anthropic(
        base_url=gateway.url, api_key=admin.customer_with_key(**US_ENTERPRISE), max_retries=0,
        default_headers={"x-forwarded-for": US_IP}) for _ in range(2))  # fmt: skip
    own: list[str] = []
    for i in range(6):
        own.append(mine.messages.batches.create(requests=[one(f"m{i}")]).id)
        theirs.messages.batches.create(requests=[one(f"t{i}")])
    listed_before = len(standin_log())
    page = mine.messages.batches.list(limit=5)
    assert [b.id for b in page.data] == list(reversed(own))[:5]
    assert all(b.results_url == f"{BATCHES}/{b.id}/results" for b in page.data)
    upstream = [r["path"] for r in standin_log()[listed_before:]]
    assert len(upstream) <= 2, upstream
