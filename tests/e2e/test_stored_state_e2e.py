"""Upstream-stored conversations stay with the customer they belong to.

Every customer reaches the upstream with the gateway's one credential, so to
the upstream every stored response belongs to one account. A customer who
learns another's response id (a shared log, a support ticket, a guess) must
not be able to continue that conversation, whose context may hold what only
the other's tier was allowed to see.
"""

from __future__ import annotations

import openai
import pytest

from tests.e2e.conftest import PUBLIC_PERSON, US_ENTERPRISE, US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e


def client(gateway: Proc, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                         default_headers={"x-forwarded-for": US_IP})


def test_a_stored_response_is_continued_only_by_its_own_customer(
    gateway: Proc, admin: Admin
) -> None:
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    stranger = client(gateway, admin.customer_with_key(**PUBLIC_PERSON))

    first = owner.responses.create(model="haiku-lite", input="remember the launch codes")
    streamed_ids = []
    with owner.responses.stream(model="haiku-lite", input="and these") as stream:
        for event in stream:
            if event.type == "response.created":
                streamed_ids.append(event.response.id)
    assert len(streamed_ids) == 1 and streamed_ids[0] != first.id

    # Its own customer continues both, streamed or not.
    for previous in (first.id, streamed_ids[0]):
        more = owner.responses.create(model="haiku-lite", input="go on",
                                      previous_response_id=previous)
        assert more.previous_response_id == previous
    # Anyone else gets what an unknown id gets: not found, recorded.
    for previous in (first.id, streamed_ids[0], "resp_never_issued"):
        with pytest.raises(openai.NotFoundError) as refused:
            stranger.responses.create(model="haiku-lite", input="what did they say?",
                                      previous_response_id=previous)
        assert refused.value.body["code"] == "stored-response-not-found", refused.value.body  # type: ignore[index]
        decision_id = refused.value.response.headers["x-gateway-decision-id"]
        record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
        assert record["rule_ids"] == ["stored-response-not-found"], record
        assert record["decision"] == "deny" and record["status"] == 404, record
    # A conversation is created through /v1/conversations, which the gateway
    # does not serve: no conversation id belongs to anyone here, so the field
    # is refused (test_reference_binding_e2e).
    with pytest.raises(openai.BadRequestError):
        owner.responses.create(model="haiku-lite", input="hi", conversation="conv_someone")
