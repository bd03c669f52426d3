"""What a Message Batch is charged: its reservations at create, and, once its
results show more tokens used than were reserved, the difference.

The create reserves each inner request's output bound plus its input
estimate; the upstream may read more (its own tokenizer, cached prompt
parts). Without a catch-up charge a customer could run past its token quota
through batches. The stand-in's batch results show 12 input and 7 output
tokens per request, far beyond what a ``max_tokens: 1`` request on a short
prompt reserves.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e
BATCHES = "/v1/messages/batches"
USED_PER_REQUEST = 12 + 7  # the stand-in's batch results (gateway/demo/standin_batches.py)
DAILY_TOKENS = 120

QUOTAS = f"""
quotas:
  public:
    default: {{requests_per_minute: 5}}
  enterprise:
    default: {{requests_per_minute: 1000, tokens_per_day: {DAILY_TOKENS}}}
  research:
    default: {{requests_per_minute: 120}}
  government:
    default: {{requests_per_minute: 1200}}
  defense:
    default: {{requests_per_minute: 1200}}
"""


def client(gateway: Proc, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0,
                               default_headers={"x-forwarded-for": US_IP})  # fmt: skip


def tiny(custom_id: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": {
        "model": "haiku-lite", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
    }}  # fmt: skip


def remaining_tokens(owner: anthropic.Anthropic, batch_id: str) -> int:
    got = owner.messages.batches.with_raw_response.retrieve(batch_id)
    return int(got.headers["x-ratelimit-remaining-tokens"])


def results_raw(gateway: Proc, owner: anthropic.Anthropic, batch_id: str) -> httpx.Response:
    return httpx.get(f"{gateway.url}{BATCHES}/{batch_id}/results",
                     headers={"x-api-key": owner.api_key, "anthropic-version": "2023-06-01",
                              "x-forwarded-for": US_IP})  # fmt: skip


def events(db_path: Path, kind: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute("SELECT body FROM audit_records WHERE kind = ?", (kind,)).fetchall()
    finally:
        db.close()
    return [orjson.loads(row[0]) for row in rows]


def test_results_using_more_than_reserved_are_charged_the_difference_once(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "quotas.yaml").write_text(QUOTAS)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    admin = Admin(gateway.url)
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    created = owner.messages.batches.with_raw_response.create(
        requests=[tiny(f"r{i}") for i in range(5)]  # type: ignore[misc]
    )
    batch_id = created.parse().id
    reserved = DAILY_TOKENS - int(created.headers["x-ratelimit-remaining-tokens"])
    used = 5 * USED_PER_REQUEST
    assert 0 < reserved < used - 50, reserved  # the evasion this test is about

    # The results (the SDK's own download) show what the requests used.
    results = list(owner.messages.batches.results(batch_id))
    assert len(results) == 5
    # Charged after the results went out: the next call may be admitted first.
    deadline = time.monotonic() + 5
    while (left := remaining_tokens(owner, batch_id)) == DAILY_TOKENS - reserved:
        assert time.monotonic() < deadline, "the difference was never charged"
        time.sleep(0.1)
    assert left == DAILY_TOKENS - used, (left, reserved, used)

    # Downloaded again: nothing more is charged.
    again = results_raw(gateway, owner, batch_id)
    assert again.status_code == 200 and len(again.content.splitlines()) == 5, again.text
    time.sleep(0.5)
    assert remaining_tokens(owner, batch_id) == DAILY_TOKENS - used

    # The auditor sees the charge: one event naming the batch and the tokens.
    charged = [e for e in events(tmp_path / "gateway.db", "batch_charged")
               if e["payload"]["batch_id"] == batch_id]  # fmt: skip
    assert len(charged) == 1, charged
    assert charged[0]["payload"]["charged_tokens"] == used - reserved, charged
    assert charged[0]["payload"]["used_tokens"] == used, charged

    # The daily token window is now reached through the catch-up alone.
    with pytest.raises(anthropic.RateLimitError) as refused:
        owner.messages.create(model="haiku-lite", max_tokens=30,
                              messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert refused.value.status_code == 429


MIXED_QUOTAS = QUOTAS.replace(
    f"default: {{requests_per_minute: 1000, tokens_per_day: {DAILY_TOKENS}}}",
    "default: {requests_per_minute: 1000, tokens_per_day: 100000}\n"
    "    agentic: {requests_per_minute: 1000, tokens_per_day: 100000}",
)


def tokens_used(admin: Admin, customer_id: str) -> dict[str, int]:
    report = admin.http.get(f"/admin/v1/customers/{customer_id}/usage").json()
    return {b["capability"]: b["used"] for b in report["buckets"] if b["kind"] == "tokens_per_day"}


def test_each_quota_group_is_charged_in_its_own_windows(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """Requests with tools (``agentic``) were admitted in the agentic bucket,
    the others in ``default``: what each group used beyond its own
    reservation is charged there, not all of it in the union's buckets."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "quotas.yaml").write_text(MIXED_QUOTAS)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    admin = Admin(gateway.url)
    customer = admin.customer(**US_ENTERPRISE)
    owner = client(gateway, admin.key(str(customer["id"])))
    tool = {"name": "lookup", "description": "look it up at length, " * 8,
            "input_schema": {"type": "object", "properties": {}}}  # fmt: skip
    agentic = [{**tiny(f"a{i}"), "params": {**tiny(f"a{i}")["params"], "tools": [tool]}}
               for i in range(3)]  # fmt: skip
    batch = owner.messages.batches.create(
        requests=[tiny("p0"), tiny("p1"), *agentic]  # type: ignore[list-item]
    )
    created = tokens_used(admin, str(customer["id"]))
    assert 0 < created["default"] < 2 * USED_PER_REQUEST, created
    assert created["agentic"] > 3 * USED_PER_REQUEST, created  # the tools' text is reserved
    list(owner.messages.batches.results(batch.id))
    deadline = time.monotonic() + 5
    while (now := tokens_used(admin, str(customer["id"])))["default"] == created["default"]:
        assert time.monotonic() < deadline, "the plain requests' difference was never charged"
        time.sleep(0.1)
    # The plain group used more than it reserved: charged up to its use. The
    # agentic group used less than its reservation: kept, never refunded,
    # and none of the plain group's difference lands there.
    assert now == {"default": 2 * USED_PER_REQUEST, "agentic": created["agentic"]}, now
