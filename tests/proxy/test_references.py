"""What a request names by id and what an answer relays (gateway.proxy.references)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.proxy.errors import ProxyError
from gateway.proxy.references import CONTAINER, ITEM, answer_references, request_references


def test_a_plain_body_names_nothing() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi", "id": "x"}]}
    assert request_references(chat, "/v1/chat/completions") == ()
    assert request_references({"model": "m", "container": "c_1"}, "/v1/chat/completions") == ()
    assert request_references({"model": "m", "input": "hi"}, "/v1/responses") == ()
    assert request_references({"model": "m", "input": ["a", "b"]}, "/v1/embeddings") == ()


def test_responses_items_and_containers() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "input": [
            {"type": "item_reference", "id": "msg_1"},
            {"type": "reasoning", "id": "rs_2", "summary": []},
            {"role": "user", "content": "no id"},
            {"type": "shell_call", "id": "sh_3", "call_id": "c",
             "environment": {"type": "container_reference", "container_id": "cntr_4"}},
        ],
        "tools": [
            {"type": "code_interpreter", "container": "cntr_5"},
            {"type": "code_interpreter", "container": {"type": "auto"}},
            {"type": "shell", "environment": {"type": "container_reference",
                                              "container_id": "cntr_6"}},
            {"type": "function", "name": "f", "parameters": {}},
        ],
    }
    assert request_references(body, "/v1/responses") == (
        (ITEM, "msg_1"), (ITEM, "rs_2"), (ITEM, "sh_3"), (CONTAINER, "cntr_4"),
        (CONTAINER, "cntr_5"), (CONTAINER, "cntr_6"),
    )


def test_anthropic_container() -> None:
    assert request_references({"container": "c_1"}, "/v1/messages") == ((CONTAINER, "c_1"),)
    assert request_references({"container": {"id": "c_2"}}, "/v1/messages") == (
        (CONTAINER, "c_2"),)
    assert request_references({"container": {"skills": []}}, "/v1/messages") == ()
    assert request_references({"container": None}, "/v1/messages/count_tokens") == ()


@pytest.mark.parametrize("body", [
    {"input": [{"type": "item_reference"}]},
    {"input": [{"type": "item_reference", "id": 7}]},
    {"input": [{"type": "message", "id": "x" * 129}]},
    {"tools": [{"type": "code_interpreter", "container": ""}]},
    {"conversation": "conv_1"},
    {"conversation": {"id": "conv_1"}},
])
def test_what_cannot_be_checked_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ProxyError) as refused:
        request_references({"model": "m", **body}, "/v1/responses")
    assert refused.value.status == 400


def test_answer_references() -> None:
    response = {"id": "resp_1", "output": [
        {"type": "code_interpreter_call", "id": "ci_1", "container_id": "cntr_1"},
        {"type": "message", "id": "msg_1", "content": []}]}
    expected = ((ITEM, "ci_1"), (CONTAINER, "cntr_1"), (ITEM, "msg_1"))
    assert answer_references(response) == expected
    assert answer_references({"type": "response.completed", "response": response}) == expected
    assert answer_references({"object": "list", "data": [{"id": "msg_2"}]}) == ((ITEM, "msg_2"),)
    assert answer_references({"type": "message", "container": {"id": "c_1"}}) == (
        (CONTAINER, "c_1"),)
    assert answer_references({"type": "message_delta", "delta": {"container": {"id": "c_2"}}}) == (
        (CONTAINER, "c_2"),)
    assert answer_references({"type": "message", "container": None}) == ()
    assert answer_references(None) == ()
