"""Anthropic's Message Batches API through the gateway, governed like single requests.

A batch is the cheapest way to query a model in bulk: every inner request is
decided as the same ``/v1/messages`` request would be, one refusal refuses
the whole batch (nothing forwarded), each inner request leaves its own
decision record before the batch goes upstream, the quota takes N requests,
and only the batch's creator can reach it, or see it listed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.e2e.conftest import PUBLIC_PERSON, US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e
StandinLog = Callable[[], list[dict[str, object]]]
BATCHES = "/v1/messages/batches"


def client(gateway: Proc, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0,
                               default_headers={"x-forwarded-for": US_IP})  # fmt: skip


def request(custom_id: str, model: str = "haiku-lite", **params: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": {
        "model": model, "max_tokens": 50,
        "messages": [{"role": "user", "content": f"question {custom_id}"}], **params,
    }}  # fmt: skip


def record(admin: Admin, decision_id: str) -> dict[str, Any]:
    found: dict[str, Any] = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    return found


def upstream_batch_calls(log: StandinLog) -> list[dict[str, object]]:
    return [r for r in log() if str(r["path"]).startswith(BATCHES)]


def test_create_poll_results_for_an_entitled_customer(
    gateway: Proc, admin: Admin, standin_log: StandinLog
) -> None:
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    raw = owner.messages.batches.with_raw_response.create(
        requests=[request("q1"), request("q2", max_tokens=20)]  # type: ignore[list-item]
    )
    batch = raw.parse()
    assert batch.id.startswith("msgbatch_"), batch
    deadline = time.monotonic() + 10
    while owner.messages.batches.retrieve(batch.id).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    results = {r.custom_id: r for r in owner.messages.batches.results(batch.id)}
    assert set(results) == {"q1", "q2"}
    assert results["q2"].result.type == "succeeded"
    assert results["q2"].result.message.model == "haiku-lite"  # type: ignore[union-attr]
    # The results came through the gateway (its results_url), not the upstream's host.
    assert owner.messages.batches.retrieve(batch.id).results_url == f"{BATCHES}/{batch.id}/results"

    # One decision record per inner request, committed before the batch went
    # upstream, each naming its custom_id and the create's decision.
    create_id = raw.headers["x-gateway-decision-id"]
    create = record(admin, create_id)
    assert (create["decision"], create["endpoint"]) == ("allow", BATCHES), create
    assert create["facts"]["message_batch"]["models"] == ["haiku-lite"], create
    listed = admin.http.get("/admin/v1/decisions",
                            params={"customer_id": create["customer_id"], "limit": 50}).json()
    inner = [d for d in listed["items"] if (d["facts"].get("message_batch") or {}).get(
        "create_decision_id") == create_id]  # fmt: skip
    assert sorted((d["facts"]["message_batch"]["custom_id"], d["model"]) for d in inner) == [
        ("q1", "haiku-lite"), ("q2", "haiku-lite")], listed
    assert all(d["decision"] == "allow" and d["ts"] == create["ts"] for d in inner), inner
    # What went upstream: the create first, and the results through the gateway.
    paths = [r["path"] for r in upstream_batch_calls(standin_log)]
    assert paths[0] == BATCHES and f"{BATCHES}/{batch.id}/results" in paths, paths


def test_one_agentic_request_from_a_public_customer_refuses_the_whole_batch(
    gateway: Proc, admin: Admin, standin_log: StandinLog
) -> None:
    public = client(gateway, admin.customer_with_key(**PUBLIC_PERSON))
    tool = {"name": "search", "description": "search the web",
            "input_schema": {"type": "object", "properties": {}}}  # fmt: skip
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        public.messages.batches.create(requests=[  # type: ignore[list-item]
            request("plain-1"), request("agent-2", tools=[tool]), request("plain-3"),
        ])
    body: Any = refused.value.body
    assert body["type"] == "error" and body["error"]["type"] == "permission_error", body
    assert body["error"]["code"] == "quota-not-offered:public.agentic", body
    assert "agent-2" in body["error"]["message"], body
    assert upstream_batch_calls(standin_log) == []  # nothing forwarded
    found = record(admin, refused.value.response.headers["x-gateway-decision-id"])
    assert found["decision"] == "deny" and "agentic" in found["capabilities"], found
    assert found["facts"]["message_batch"]["refused_custom_id"] == "agent-2", found


def test_a_model_outside_the_tier_refuses_the_batch(
    gateway: Proc, admin: Admin, standin_log: StandinLog
) -> None:
    public = client(gateway, admin.customer_with_key(**PUBLIC_PERSON))
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        public.messages.batches.create(
            requests=[request("ok"), request("frontier", model="fable-5")]  # type: ignore[list-item]
        )
    assert "frontier" in refused.value.body["error"]["message"], refused.value.body  # type: ignore[index]
    assert upstream_batch_calls(standin_log) == []


def test_strangers_get_404_and_nothing_is_forwarded(
    gateway: Proc, admin: Admin, standin_log: StandinLog
) -> None:
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    stranger = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    batch = owner.messages.batches.create(requests=[request("mine")])  # type: ignore[list-item]
    seen_before = len(standin_log())
    calls: list[Callable[[str], object]] = [
        stranger.messages.batches.retrieve,
        lambda batch_id: list(stranger.messages.batches.results(batch_id)),
        stranger.messages.batches.cancel,
        stranger.messages.batches.delete,
    ]
    for call in calls:
        for batch_id in (batch.id, "msgbatch_never_made"):
            with pytest.raises(anthropic.NotFoundError) as missing:
                call(batch_id)
            body: Any = missing.value.body
            assert body["error"]["code"] == "message-batch-not-found", body
            assert body["error"]["type"] == "not_found_error", body
    assert len(standin_log()) == seen_before  # refused at the gateway, never upstream
    # The owner still has it, whole.
    assert owner.messages.batches.retrieve(batch.id).id == batch.id


def test_results_by_url_for_a_stranger_are_404(
    gateway: Proc, admin: Admin, standin_log: StandinLog
) -> None:
    """``results`` retrieves the batch first; the results route itself is guarded too."""
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    stranger_key = admin.customer_with_key(**US_ENTERPRISE)
    batch = owner.messages.batches.create(requests=[request("mine")])  # type: ignore[list-item]
    seen_before = len(standin_log())
    got = owner._client.get(  # the raw route, as a client following results_url would
        f"{gateway.url}{BATCHES}/{batch.id}/results",
        headers={"x-api-key": stranger_key, "anthropic-version": "2023-06-01"},
    )
    assert got.status_code == 404, got.text
    assert len(standin_log()) == seen_before


def test_list_shows_only_the_callers_batches(gateway: Proc, admin: Admin) -> None:
    mine = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    theirs = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    own_ids = [mine.messages.batches.create(requests=[request(f"m{i}")]).id  # type: ignore[list-item]
               for i in range(3)]  # fmt: skip
    their_id = theirs.messages.batches.create(requests=[request("t")]).id  # type: ignore[list-item]
    listed = [b.id for b in mine.messages.batches.list(limit=2)]  # the SDK pages on
    assert listed == list(reversed(own_ids)), listed  # newest first, no one else's
    assert their_id not in listed
    assert [b.id for b in theirs.messages.batches.list()] == [their_id]
    # Deleted: gone from the list, and 404 from here on.
    mine.messages.batches.delete(own_ids[0])
    assert [b.id for b in mine.messages.batches.list()] == list(reversed(own_ids[1:]))
    with pytest.raises(anthropic.NotFoundError):
        mine.messages.batches.retrieve(own_ids[0])


QUOTAS = """
quotas:
  public:
    default: {requests_per_minute: 5}
  enterprise:
    default_max_tokens: 100
    default: {requests_per_minute: 4, tokens_per_minute: 100000}
  research:
    default: {requests_per_minute: 120}
  government:
    default: {requests_per_minute: 1200}
  defense:
    default: {requests_per_minute: 1200}
"""


def test_a_batch_counts_its_requests_against_the_quota(
    gateway_factory: GatewayFactory, tmp_path: Path, standin_log: StandinLog
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "quotas.yaml").write_text(QUOTAS)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    owner = client(gateway, Admin(gateway.url).customer_with_key(**US_ENTERPRISE))
    with pytest.raises(anthropic.RateLimitError) as refused:
        owner.messages.batches.create(
            requests=[request(f"r{i}") for i in range(5)]  # type: ignore[misc]
        )
    assert refused.value.body["error"]["type"] == "rate_limit_error", refused.value.body  # type: ignore[index]
    assert upstream_batch_calls(standin_log) == []
    created = owner.messages.batches.with_raw_response.create(
        requests=[request(f"r{i}") for i in range(3)]  # type: ignore[misc]
    )
    # Three requests taken at once, and their three reservations (50 output + input each).
    assert int(created.headers["x-ratelimit-remaining-requests"]) == 1, created.headers
    assert int(created.headers["x-ratelimit-remaining-tokens"]) <= 100000 - 150, created.headers
    with pytest.raises(anthropic.RateLimitError):
        owner.messages.batches.create(requests=[request("a"), request("b")])  # type: ignore[list-item]


def test_a_suspended_customer_cannot_fetch_results(
    gateway: Proc, admin: Admin, standin_log: StandinLog
) -> None:
    customer = admin.customer(**US_ENTERPRISE)
    owner = client(gateway, admin.key(str(customer["id"])))
    batch = owner.messages.batches.create(requests=[request("dual-use")])  # type: ignore[list-item]
    patched = admin.http.patch(f"/admin/v1/customers/{customer['id']}",
                               json={"status": "suspended"})  # fmt: skip
    assert patched.status_code == 200, patched.text
    deadline = time.monotonic() + 5
    while True:
        try:
            owner.messages.batches.retrieve(batch.id)
        except anthropic.PermissionDeniedError:
            break
        assert time.monotonic() < deadline, "still served"
        time.sleep(0.1)
    seen_before = len(standin_log())
    got = owner._client.get(
        f"{gateway.url}{BATCHES}/{batch.id}/results",
        headers={"x-api-key": owner.api_key, "anthropic-version": "2023-06-01"},
    )
    assert got.status_code == 403, got.text
    assert got.json()["error"]["code"] == "customer-suspended", got.text
    assert len(standin_log()) == seen_before  # decided and recorded, never forwarded


def test_too_many_requests_in_one_batch_is_400(gateway: Proc, admin: Admin) -> None:
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    with pytest.raises(anthropic.BadRequestError) as bad:
        owner.messages.batches.create(
            requests=[request(f"r{i}") for i in range(10_001)]  # type: ignore[misc]
        )
    assert "at most 10000 requests" in bad.value.body["error"]["message"], bad.value.body  # type: ignore[index]


def test_a_batch_created_upstream_but_not_bound_keeps_its_charge(
    gateway_factory: GatewayFactory, tmp_path: Path, standin_log: StandinLog
) -> None:
    """The database refuses the binding after the upstream created the batch:
    the client gets a 503 and never sees the id, but the upstream runs (and
    bills) every request; releasing the reservations made a retried create
    during an outage free of quota."""
    import sqlite3

    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "quotas.yaml").write_text(QUOTAS)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    owner = client(gateway, Admin(gateway.url).customer_with_key(**US_ENTERPRISE))
    db = sqlite3.connect(tmp_path / "gateway.db")
    db.execute("ALTER TABLE message_batch_owners RENAME TO message_batch_owners_off")
    db.commit()
    with pytest.raises(anthropic.InternalServerError) as withheld:
        owner.messages.batches.create(
            requests=[request(f"r{i}") for i in range(3)]  # type: ignore[misc]
        )
    assert withheld.value.status_code == 503
    assert [c["path"] for c in upstream_batch_calls(standin_log)] == [BATCHES]
    db.execute("ALTER TABLE message_batch_owners_off RENAME TO message_batch_owners")
    db.commit()
    db.close()
    created = owner.messages.batches.with_raw_response.create(
        requests=[request("after")]  # type: ignore[list-item]
    )
    # The three requests the upstream took are charged their reservations (50
    # output tokens and their input each), as the one after them is.
    assert int(created.headers["x-ratelimit-remaining-tokens"]) <= 100000 - 4 * 50, created.headers


def test_a_directive_on_a_capability_a_request_carried_refuses_results(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """Calls on a batch by id are decided with the union of its requests'
    capabilities: a directive refusing one of them stops its results."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    admin = Admin(gateway.url)
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    coded = request("code")
    coded["params"]["messages"] = [{"role": "user", "content": "fix: def f(x): pass"}]
    batch = owner.messages.batches.create(requests=[request("plain"), coded])  # type: ignore[list-item]
    rules = bundle / "rules.yaml"
    rules.write_text(rules.read_text() + (
        "\n  - id: emergency-coding-freeze\n    effect: deny\n"
        "    when: {capability_in: [coding]}\n    reason: Frozen by emergency directive.\n"
    ))
    deadline = time.monotonic() + 5
    while True:
        try:
            owner.messages.batches.retrieve(batch.id)
        except anthropic.PermissionDeniedError as refused:
            assert refused.body["error"]["code"] == "emergency-coding-freeze", refused.body  # type: ignore[index]
            found = record(admin, refused.response.headers["x-gateway-decision-id"])
            assert found["rule_ids"] == ["emergency-coding-freeze"], found
            break
        assert time.monotonic() < deadline, "still served"
        time.sleep(0.1)
    got = owner._client.get(
        f"{gateway.url}{BATCHES}/{batch.id}/results",
        headers={"x-api-key": owner.api_key, "anthropic-version": "2023-06-01"},
    )
    assert got.status_code == 403, got.text
    assert got.json()["error"]["code"] == "emergency-coding-freeze", got.text


def test_list_is_decided_like_models_list_origin_and_key_scope_included(
    gateway: Proc, admin: Admin
) -> None:
    """The list is refused from a sanctioned origin like any request, and
    shows only batches whose models the calling key may use now."""
    us_person = {"name": "Sam Citizen", "kind": "individual", "citizenships": ["US"],
                 "residence": "US", "kyc_level": "kyb_verified", "tier": "enterprise"}
    customer = str(admin.customer(**us_person)["id"])  # frontier models too
    whole = client(gateway, admin.key(customer))
    haiku = whole.messages.batches.create(requests=[request("h")]).id  # type: ignore[list-item]
    fable = whole.messages.batches.create(
        requests=[request("f", model="fable-5")]  # type: ignore[list-item]
    ).id
    assert [b.id for b in whole.messages.batches.list()] == [fable, haiku]

    abroad = anthropic.Anthropic(base_url=gateway.url, api_key=whole.api_key, max_retries=0,
                                 default_headers={"x-forwarded-for": "175.45.176.1"})  # KP
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        abroad.messages.batches.list()
    assert refused.value.body["error"]["code"] == "sanctioned-origin", refused.value.body  # type: ignore[index]
    found = record(admin, refused.value.response.headers["x-gateway-decision-id"])
    assert (found["decision"], found["rule_ids"]) == ("deny", ["sanctioned-origin"]), found

    scoped = admin.http.post(f"/admin/v1/customers/{customer}/keys",
                             json={"name": "haiku only", "allowed_models": ["haiku-lite"]})
    assert scoped.status_code == 201, scoped.text
    narrow = client(gateway, scoped.json()["key"])
    assert [b.id for b in narrow.messages.batches.list(limit=1)] == [haiku]  # paged past fable
