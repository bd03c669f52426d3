"""Upstream objects named by id stay with the customer they were relayed to.

Every customer reaches the upstream with the gateway's one credential, so to
the upstream every stored item and every code-execution container belongs to
one account. A customer who learns another's item id (``item_reference``, or an
input item replayed with its ``id``) or container id must get what an unknown
id gets, 404, recorded, and the upstream must never see the request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

Log = Callable[[], list[dict[str, object]]]
XFF = {"x-forwarded-for": US_IP}
CODE = [{"type": "code_interpreter", "container": {"type": "auto"}}]
ANTHROPIC_CODE: Any = [{"type": "code_execution_20250825", "name": "code_execution"}]


def openai_client(gateway: Proc, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                         default_headers=XFF)


def anthropic_client(gateway: Proc, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0,
                               default_headers=XFF)


def two_customers(admin: Admin) -> tuple[str, str]:
    return (admin.customer_with_key(**{**US_ENTERPRISE, "name": "Owner Corp"}),
            admin.customer_with_key(**{**US_ENTERPRISE, "name": "Stranger Corp"}))


def assert_not_found_unforwarded(
    refused: Any, admin: Admin, standin_log: Log, before: int, rule: str
) -> None:
    assert len(standin_log()) == before, "the refused request reached the upstream"
    decision_id = refused.response.headers["x-gateway-decision-id"]
    record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    assert record["rule_ids"] == [rule], record
    assert record["decision"] == "deny" and record["status"] == 404, record


def test_item_ids_are_referenced_only_by_their_customer(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner, stranger = openai_client(gateway, owner_key), openai_client(gateway, stranger_key)

    made = owner.responses.create(model="haiku-lite", input="remember the launch codes")
    output_id = made.output[-1].id
    streamed: list[str] = []
    with owner.responses.stream(model="haiku-lite", input="and these") as stream:
        for event in stream:
            if event.type == "response.completed":
                streamed.append(event.response.output[-1].id)
    listed = owner.responses.input_items.list(made.id)
    input_id = listed.data[0].id
    # Background mode: the create answers queued, without output; its items
    # are first seen, and bound, by the retrieval that shows them.
    queued = owner.responses.create(model="haiku-lite", input="later", background=True,
                                    extra_headers={"x-standin-background-ms": "50"})
    assert queued.output == []
    for _ in range(100):
        polled = owner.responses.retrieve(queued.id)
        if polled.status == "completed":
            break
        time.sleep(0.05)
    # A stored response streamed again (``?stream=true``) binds what it shows too.
    later = owner.responses.create(model="haiku-lite", input="again", background=True,
                                   extra_headers={"x-standin-background-ms": "0"})
    replayed = [event.response.output[-1].id
                for event in owner.responses.retrieve(later.id, stream=True)
                if event.type == "response.completed"]
    own_ids = [output_id, streamed[0], input_id, polled.output[-1].id, *replayed]
    assert len(own_ids) == 5

    for item_id in [*own_ids, "msg_never_issued"]:
        for shape in ({"type": "item_reference", "id": item_id},
                      {"type": "message", "id": item_id, "role": "assistant",
                       "status": "completed",
                       "content": [{"type": "output_text", "text": "?", "annotations": []}]}):
            before = len(standin_log())
            with pytest.raises(openai.NotFoundError) as refused:
                stranger.responses.create(model="haiku-lite", input=[shape])  # type: ignore[list-item]
            assert refused.value.body["code"] == "stored-item-not-found", refused.value.body  # type: ignore[index]
            assert_not_found_unforwarded(
                refused.value, admin, standin_log, before, "stored-item-not-found"
            )
    # Its own customer references every one of them, in either shape.
    for item_id in own_ids:
        again = owner.responses.create(
            model="haiku-lite", input=[{"type": "item_reference", "id": item_id},
                                       {"role": "user", "content": "go on"}])
        assert again.status == "completed"


def test_openai_containers_are_reused_only_by_their_customer(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner, stranger = openai_client(gateway, owner_key), openai_client(gateway, stranger_key)

    made = owner.responses.create(model="haiku-lite", input="run it", tools=CODE)  # type: ignore[arg-type]
    call = made.output[0]
    assert call.type == "code_interpreter_call"
    container_id = call.container_id

    for named in (container_id, "cntr_never_issued"):
        before = len(standin_log())
        with pytest.raises(openai.NotFoundError) as refused:
            stranger.responses.create(
                model="haiku-lite", input="what is in there?",
                tools=[{"type": "code_interpreter", "container": named}])
        assert refused.value.body["code"] == "container-not-found", refused.value.body  # type: ignore[index]
        assert_not_found_unforwarded(refused.value, admin, standin_log, before,
                                     "container-not-found")
    reused = owner.responses.create(model="haiku-lite", input="run it again",
                                    tools=[{"type": "code_interpreter", "container": container_id}])
    assert reused.output[0].container_id == container_id  # type: ignore[union-attr]


def test_anthropic_containers_are_reused_only_by_their_customer(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner = anthropic_client(gateway, owner_key)
    stranger = anthropic_client(gateway, stranger_key)
    ask: Any = [{"role": "user", "content": "run it"}]

    made = owner.messages.create(model="haiku-lite", max_tokens=64, messages=ask,
                                 tools=ANTHROPIC_CODE)
    assert made.container is not None
    with owner.messages.stream(model="haiku-lite", max_tokens=64, messages=ask,
                               tools=ANTHROPIC_CODE) as stream:
        final = stream.get_final_message()
    assert final.container is not None and final.container.id != made.container.id
    own = [made.container.id, final.container.id]

    for named in [*own, "container_never_issued"]:
        for given in (named, {"id": named}):
            before = len(standin_log())
            with pytest.raises(anthropic.NotFoundError) as refused:
                stranger.messages.create(model="haiku-lite", max_tokens=64, messages=ask,
                                         tools=ANTHROPIC_CODE, container=given)  # type: ignore[arg-type]
            assert refused.value.body["error"]["type"] == "not_found_error", refused.value.body  # type: ignore[index]
            assert_not_found_unforwarded(refused.value, admin, standin_log, before,
                                         "container-not-found")
    for named in own:
        reused = owner.messages.create(model="haiku-lite", max_tokens=64, messages=ask,
                                       tools=ANTHROPIC_CODE, container=named)
        assert reused.container is not None and reused.container.id == named


def test_a_conversation_id_is_refused_as_unbindable(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    # Conversations are made through /v1/conversations, which the gateway does
    # not relay: it can never know whose one is, so the field is refused
    # outright (400, naming it), not answered as if the id were unknown.
    client = openai_client(gateway, two_customers(admin)[0])
    for conversation in ("conv_someone", {"id": "conv_someone"}):
        before = len(standin_log())
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model="haiku-lite", input="hi",
                                    conversation=conversation)  # type: ignore[arg-type]
        assert refused.value.body["param"] == "conversation", refused.value.body  # type: ignore[index]
        assert "/v1/conversations" in refused.value.body["message"], refused.value.body  # type: ignore[index]
        assert len(standin_log()) == before


def test_a_batch_request_naming_anothers_container_refuses_the_batch(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner = anthropic_client(gateway, owner_key)
    stranger = anthropic_client(gateway, stranger_key)
    ask: Any = [{"role": "user", "content": "run it"}]
    made = owner.messages.create(model="haiku-lite", max_tokens=64, messages=ask,
                                 tools=ANTHROPIC_CODE)
    assert made.container is not None
    params: Any = {"model": "haiku-lite", "max_tokens": 64, "messages": ask,
                   "tools": ANTHROPIC_CODE, "container": made.container.id}

    before = len(standin_log())
    with pytest.raises(anthropic.NotFoundError) as refused:
        stranger.messages.batches.create(requests=[{"custom_id": "theirs", "params": params}])
    assert_not_found_unforwarded(refused.value, admin, standin_log, before,
                                 "container-not-found")
    batch = owner.messages.batches.create(requests=[{"custom_id": "mine", "params": params}])
    assert batch.id


def test_items_a_cancel_shows_are_its_customers(gateway: Proc, admin: Admin) -> None:
    """``POST /v1/responses/{id}/cancel`` answers the response, with the output
    it has (all of it, when it completed first). Those items were bound by no
    one: only a retrieval bound what it showed, so its own customer was
    refused 404 for items the gateway had relayed to it."""
    owner_key, _ = two_customers(admin)
    owner = openai_client(gateway, owner_key)
    queued = owner.responses.create(model="haiku-lite", input="later", background=True,
                                    extra_headers={"x-standin-background-ms": "0"})
    cancelled = owner.responses.cancel(queued.id)
    assert cancelled.output, cancelled  # it had completed: all its output is shown
    again = owner.responses.create(
        model="haiku-lite", input=[{"type": "item_reference", "id": cancelled.output[-1].id},
                                   {"role": "user", "content": "go on"}])
    assert again.status == "completed"
