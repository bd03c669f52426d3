"""A container named inside an input item is the caller's, or not found.

The upstream keeps a Responses request's input items as sent and lists them
again (``GET /v1/responses/{id}/input_items``). An item's ``container_id``
(a replayed ``code_interpreter_call``; a replayed message's citation) names a
container as a ``code_interpreter`` tool's ``container`` does: a customer
replaying its own call with another's container, or with one made outside
the gateway, must get 404 and the upstream must never see the request; and
listing what it sent must make no one the owner of anything in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.e2e.test_reference_binding_e2e import (
    CODE,
    assert_not_found_unforwarded,
    openai_client,
    two_customers,
)
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

Log = Callable[[], list[dict[str, object]]]
OUTSIDE = "cntr_made_by_the_operator_outside_the_gateway"


def test_a_container_in_an_input_item_is_the_callers_or_not_found(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner, stranger = openai_client(gateway, owner_key), openai_client(gateway, stranger_key)
    owners = owner.responses.create(model="haiku-lite", input="run it", tools=CODE)  # type: ignore[arg-type]
    owners_container = owners.output[0].container_id  # type: ignore[union-attr]
    cited = owners.output[-1].model_dump(exclude_none=True)
    own = stranger.responses.create(model="haiku-lite", input="run mine", tools=CODE)  # type: ignore[arg-type]
    own_call: dict[str, Any] = own.output[0].model_dump(exclude_none=True)
    own_message: dict[str, Any] = own.output[-1].model_dump(exclude_none=True)
    go_on = {"role": "user", "content": "go on"}

    # Its own call (its own item id) replayed with someone else's container,
    # or one nobody was ever relayed; its own message citing one.
    for named in (owners_container, OUTSIDE):
        citing = {**own_message, "content": [
            {**part, "annotations": [{**a, "container_id": named} for a in part["annotations"]]}
            for part in own_message["content"]]}  # fmt: skip
        for item in ({**own_call, "container_id": named}, citing):
            before = len(standin_log())
            with pytest.raises(openai.NotFoundError) as refused:
                stranger.responses.create(model="haiku-lite", input=[item, go_on])  # type: ignore[list-item]
            assert refused.value.body["code"] == "container-not-found", refused.value.body  # type: ignore[index]
            assert named in refused.value.body["message"]  # type: ignore[index]
            assert_not_found_unforwarded(
                refused.value, admin, standin_log, before, "container-not-found"
            )
    # Its own, as they were relayed to it, are forwarded and listed back.
    again = stranger.responses.create(model="haiku-lite", input=[own_call, own_message, go_on])  # type: ignore[list-item]
    listed = stranger.responses.input_items.list(again.id)
    assert [getattr(item, "container_id", None) for item in listed.data][:1] == [
        own_call["container_id"]]
    # Nothing it sent or listed made the other containers its own.
    for named in (owners_container, OUTSIDE):
        before = len(standin_log())
        with pytest.raises(openai.NotFoundError) as refused:
            stranger.responses.create(model="haiku-lite", input="use it",
                                      tools=[{"type": "code_interpreter", "container": named}])
        assert_not_found_unforwarded(refused.value, admin, standin_log, before,
                                     "container-not-found")
    # The owner still replays what cites its own container.
    assert owner.responses.create(model="haiku-lite", input=[cited, go_on]).status == "completed"  # type: ignore[list-item]
