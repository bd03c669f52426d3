"""Ownership chains through the real gateway and the official OpenAI SDK: a
Singapore company whose parent is CN-owned is refused by the bundled rule,
its decision record says through which chain, and the record's facts replay
to the same decision; a 40% holding through that parent is served."""

from __future__ import annotations

from datetime import datetime

import openai
import pytest

from gateway.policy.engine import decide
from gateway.policy.loader import load_bundle
from gateway.policy.replay import from_replay
from tests.e2e.conftest import US_ENTERPRISE, US_IP
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e

RULE = "controlled-by-country-of-concern"
LION = {
    "country": "SG",
    "name": "Lion Holdings Pte",
    "ownership": [{"country": "CN", "percent": 100}],
}


def _client(gateway: Proc, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                         default_headers={"x-forwarded-for": US_IP})  # fmt: skip


def _company(admin: Admin, name: str, lion_percent: float) -> str:
    return admin.customer_with_key(**{
        **US_ENTERPRISE, "name": name, "residence": "SG", "incorporated_in": "SG",
        "ownership": [{**LION, "percent": lion_percent},
                      {"country": "SG", "percent": 100 - lion_percent}],
    })  # fmt: skip


def test_a_company_whose_parent_is_cn_owned_is_refused_and_the_record_says_why(
    gateway: Proc, admin: Admin
) -> None:
    refused_key = _company(admin, "Merlion Robotics Pte", 60)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _client(gateway, refused_key).chat.completions.create(
            model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == RULE, refused.value.body
    decision_id = refused.value.response.headers["x-gateway-decision-id"]
    record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    assert record["rule_ids"] == [RULE]
    assert record["facts"]["ownership_control"] == {
        RULE: {
            "share_percent": 60.0,
            "threshold_percent": 50.0,
            "paths": ["Lion Holdings Pte (SG) 60% <- CN 100%"],
        }
    }
    # Replay (gateway policy impact) decides it again from the record's facts alone.
    principal, facts = from_replay(record["facts"])
    assert principal.ownership[0].ownership[0].country == "CN"
    bundle = load_bundle(REPO / "policies")
    again = decide(principal, facts, bundle, datetime.fromisoformat(record["ts"]))
    assert again.rule_ids == (RULE,)

    served_key = _company(admin, "Temasek Mini Pte", 40)
    reply = _client(gateway, served_key).chat.completions.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
