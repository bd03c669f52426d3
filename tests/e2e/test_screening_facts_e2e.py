"""A request refused because its customer is held by sanctions screening says,
in its decision record, which screened name matched which listed name and how
closely (``facts.screening``), through the real gateway and the official
OpenAI SDK; an allowed request's record carries nothing of it, and the
record's facts still replay (``gateway policy impact``) to the same decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import openai
import pytest

from gateway.policy.engine import decide
from gateway.policy.loader import load_bundle
from gateway.policy.replay import from_replay
from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e
DATA = REPO / "tests" / "data"


def _ask(gateway: Proc, key: str, model: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                           default_headers={"x-forwarded-for": US_IP})  # fmt: skip
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return client


def _record(admin: Admin, response: Any) -> dict[str, Any]:
    decision_id = response.headers["x-gateway-decision-id"]
    record: dict[str, Any] = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    return record


def test_a_refusal_of_a_held_customer_names_the_hits_and_replays(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(env={"GATEWAY_SANCTIONS_LIST": str(DATA / "sanctions_sample.csv")})
    admin = Admin(gateway.url)
    owners = [{"country": "SG", "percent": 60, "name": "Zoltrava Shipping Ltd"},
              {"country": "US", "percent": 40}]  # fmt: skip
    key = admin.customer_with_key(**{**US_ENTERPRISE, "name": "Merlion Trading Inc",
                                     "ownership": owners})  # fmt: skip
    # fable-5 is an enterprise model: held, the customer is served as public.
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _ask(gateway, key, "fable-5")
    record = _record(admin, refused.value.response)
    assert record["facts"]["tier_demotion"] == "sanctions screening status is potential_match"
    screening = record["facts"].get("screening")
    assert screening is not None, record["facts"]
    assert screening["hits"][0] == {
        "screened_name": "Zoltrava Shipping Ltd", "listed_name": "Zoltrava Shipping",
        "score": 1.0, "source": "Synthetic Entity List (SYN-EL)", "reviewed": False,
    }, screening  # fmt: skip
    assert screening["hit_count"] == len(screening["hits"]) and screening["list_version"]
    # Replay (gateway policy impact) decides it again from the facts alone.
    principal, facts = from_replay(record["facts"])
    again = decide(principal, facts, load_bundle(REPO / "policies"),
                   datetime.fromisoformat(record["ts"]))  # fmt: skip
    assert list(again.rule_ids) == record["rule_ids"]

    # Allowed (a public model): nothing of the screening is added.
    reply = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                          default_headers={"x-forwarded-for": US_IP})  # fmt: skip
    raw = reply.chat.completions.with_raw_response.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    assert "screening" not in _record(admin, raw)["facts"]


def test_a_confirmed_match_after_a_withdrawn_clearance_names_the_hit_unreviewed(
    gateway_factory: GatewayFactory,
) -> None:
    """Cleared, then found to be a real match: the officer's PATCH withdraws the
    review, the cached principal is reloaded, and the refusal names the hit as
    no longer reviewed."""
    gateway = gateway_factory(env={"GATEWAY_SANCTIONS_LIST": str(DATA / "sanctions_sample.csv")})
    admin = Admin(gateway.url)
    created = admin.customer(**{**US_ENTERPRISE, "name": "Zoltrava Shipping Ltd"})
    cid = str(created["id"])
    key = admin.key(cid)
    cleared = admin.http.patch(f"/admin/v1/customers/{cid}", json={"sanctions_status": "clear"})
    assert cleared.json()["sanctions_status"] == "clear", cleared.text
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                           default_headers={"x-forwarded-for": US_IP})  # fmt: skip
    ok = client.chat.completions.with_raw_response.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    assert "screening" not in _record(admin, ok)["facts"]
    body = {"sanctions_status": "confirmed_match", "reason": "same registry number as listed"}
    confirmed = admin.http.patch(f"/admin/v1/customers/{cid}", json=body)
    assert confirmed.status_code == 200, confirmed.text
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _ask(gateway, key, "haiku-lite")
    record = _record(admin, refused.value.response)
    assert record["rule_ids"] == ["sanctions-confirmed-match"], record
    hits = record["facts"]["screening"]["hits"]
    assert [(h["screened_name"], h["reviewed"]) for h in hits] == [
        ("Zoltrava Shipping Ltd", False)], hits  # fmt: skip
