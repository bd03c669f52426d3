"""What a request names by id and what an answer relays (gateway.proxy.references)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.proxy.errors import ProxyError
from gateway.proxy.references import (
    AUDIO,
    CITED_FILE,
    CONTAINER,
    FILE,
    ITEM,
    PROMPT,
    SKILL,
    VECTOR_STORE,
    request_references,
    stored_prompt,
)
from gateway.proxy.relayed_ids import answer_references


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


def test_custom_skills_are_named_and_the_providers_own_are_not() -> None:
    skills = [{"type": "anthropic", "skill_id": "pptx", "version": "latest"},
              {"type": "custom", "skill_id": "skill_1", "version": "3"},
              {"type": "someday", "skill_id": "skill_2"}]  # unknown type: checked too
    assert request_references({"container": {"id": "c_1", "skills": skills}},
                               "/v1/messages") == (
        (CONTAINER, "c_1"), (SKILL, "skill_1"), (SKILL, "skill_2"))
    assert request_references({"container": {"skills": skills[:2]}},
                              "/v1/messages/count_tokens") == ((SKILL, "skill_1"),)
    environment = {"type": "container_auto", "skills": [
        {"type": "skill_reference", "skill_id": "skill_3", "version": 2},
        {"type": "inline", "name": "n", "description": "d", "source": {}}]}
    body = {"tools": [{"type": "shell", "environment": environment}]}
    assert request_references(body, "/v1/responses") == ((SKILL, "skill_3"),)
    local = {"type": "local", "skills": [
        {"name": "n", "description": "d", "path": "/skills/n"}]}  # on the caller's machine
    body = {"tools": [{"type": "shell", "environment": local}]}
    assert request_references(body, "/v1/responses") == ()


@pytest.mark.parametrize(("body", "endpoint"), [
    ({"container": {"skills": {"type": "custom", "skill_id": "s"}}}, "/v1/messages"),
    ({"container": {"skills": [{"type": "custom"}]}}, "/v1/messages"),
    ({"container": {"skills": [{"type": "custom", "skill_id": ""}]}}, "/v1/messages"),
    ({"tools": [{"type": "shell", "environment": {"skills": [{"type": "skill_reference"}]}}]},
     "/v1/responses"),
])
def test_a_custom_skill_without_an_id_is_refused(body: dict[str, Any], endpoint: str) -> None:
    with pytest.raises(ProxyError) as refused:
        request_references(body, endpoint)
    assert refused.value.status == 400


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


def _walked(body: dict[str, Any], endpoint: str = "/v1/messages") -> Any:
    from gateway.proxy.body import parse_request_body

    return parse_request_body(orjson.dumps(body), endpoint, lambda: 64)[0].references


def test_files_audio_and_vector_stores_are_found_by_the_body_walk() -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "file", "file_id": "file_a"}},
            {"type": "container_upload", "file_id": "file_b"}]},
        {"role": "assistant", "audio": {"id": "audio_c"}},
    ], "tools": [{"type": "file_search", "vector_store_ids": ["vs_d"]},
                 {"type": "code_interpreter", "container": {"type": "auto",
                                                            "file_ids": ["file_e"]}}]}
    assert _walked(body) == (
        (FILE, "file_a"), (FILE, "file_b"), (AUDIO, "audio_c"), (VECTOR_STORE, "vs_d"),
        (FILE, "file_e"))


def test_a_file_id_in_a_schema_or_a_tool_calls_input_names_nothing() -> None:
    # A property called file_id, or a tool call's argument of that name, is
    # the customer's own data: the upstream resolves no file from it.
    body: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                           "input": {"file_id": "file_x"}}]},
    ], "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {
        "file_id": {"type": "string"}}}}]}
    assert _walked(body) == ()
    # A stored prompt's variables are free-form, but a file part there is read.
    prompt = {"model": "m", "input": "hi", "prompt": {"id": "pmpt_1", "variables": {
        "the report": {"type": "input_file", "file_id": "file_y"}, "file_id": "just text"}}}
    assert _walked(prompt, "/v1/responses") == ((FILE, "file_y"), (PROMPT, "pmpt_1"))
    with pytest.raises(ProxyError) as bad:
        _walked({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "input_file", "file_id": {"id": "file_x"}}]}]})
    assert bad.value.status == 400


def test_only_code_execution_results_bind_files() -> None:
    message = {"type": "message", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {"file_id": "file_asked_for"}},
        {"type": "bash_code_execution_tool_result", "tool_use_id": "s", "content": {
            "type": "bash_code_execution_result",
            "content": [{"type": "bash_code_execution_output", "file_id": "file_made"}]}}]}
    assert answer_references(message) == ((FILE, "file_made"),)
    event = {"type": "content_block_start", "index": 2,
             "content_block": message["content"][1]}  # type: ignore[index]
    assert answer_references(event) == ((FILE, "file_made"),)
    chunk = {"choices": [{"index": 0, "delta": {"audio": {"id": "audio_1", "data": "x"}}}]}
    assert answer_references(chunk) == ((AUDIO, "audio_1"),)


_CITING = {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": "t",
    "annotations": [
        {"type": "container_file_citation", "container_id": "cntr_1", "file_id": "cfile_1",
         "filename": "a.csv", "start_index": 0, "end_index": 1},
        {"type": "file_path", "file_id": "cfile_2", "index": 0},
        {"type": "file_citation", "file_id": "file-3", "filename": "h.pdf", "index": 1},
        {"type": "url_citation", "url": "https://example.com", "title": "x",
         "start_index": 0, "end_index": 1}]}]}  # fmt: skip


def test_the_files_a_responses_answer_cites_are_bound() -> None:
    cites = ((FILE, "cfile_1"), (CONTAINER, "cntr_1"), (FILE, "cfile_2"), (CITED_FILE, "file-3"))
    assert answer_references({"id": "resp_1", "output": [_CITING]}) == ((ITEM, "msg_1"), *cites)
    completed = {"type": "response.completed", "response": {"output": [_CITING]}}
    assert answer_references(completed) == ((ITEM, "msg_1"), *cites)
    # Streamed before the end: the item as added, each annotation as added.
    added = {"type": "response.output_item.added", "output_index": 0,
             "item": {"type": "code_interpreter_call", "id": "ci_1", "container_id": "cntr_9"}}
    assert answer_references(added) == ((ITEM, "ci_1"), (CONTAINER, "cntr_9"))
    for annotation, expected in zip(_CITING["content"][0]["annotations"],  # type: ignore[index]
                                    ((FILE, "cfile_1"), (FILE, "cfile_2"), (CITED_FILE, "file-3"),
                                     None), strict=True):
        event = {"type": "response.output_text.annotation.added", "annotation": annotation}
        assert answer_references(event)[:1] == ((expected,) if expected else ())
    # An input items page shows what the caller sent: its annotations bind nothing.
    assert answer_references({"object": "list", "data": [_CITING]}) == ((ITEM, "msg_1"),)


def test_a_stored_prompt_is_named_and_noted() -> None:
    body = {"model": "m", "prompt": {"id": "pmpt_1", "version": "4"}}
    assert request_references(body, "/v1/responses") == ((PROMPT, "pmpt_1"),)
    assert stored_prompt(body) == ("pmpt_1", "4")
    assert stored_prompt({"prompt": {"id": "pmpt_2", "version": 4}}) == ("pmpt_2", None)
    # A completions prompt is text.
    assert request_references({"model": "m", "prompt": "hi"}, "/v1/completions") == ()
    assert stored_prompt({"prompt": "hi"}) is None
    with pytest.raises(ProxyError) as bad:
        request_references({"model": "m", "prompt": {"id": ["pmpt_1"]}}, "/v1/responses")
    assert bad.value.status == 400 and bad.value.param == "prompt.id"


def test_a_container_inside_an_input_item_is_named() -> None:
    # An input item is kept upstream as sent, its container too: it is named
    # like a code interpreter tool's container, whichever item carries it.
    replayed = {"type": "code_interpreter_call", "id": "ci_own", "container_id": "cntr_other",
                "code": "print(1)", "outputs": [], "status": "completed"}
    cited = {**_CITING, "id": "msg_own", "role": "assistant", "status": "completed"}
    body = {"model": "m", "input": [replayed, cited, {"role": "user", "content": "go on"}]}
    assert request_references(body, "/v1/responses") == (
        (ITEM, "ci_own"), (CONTAINER, "cntr_other"), (ITEM, "msg_own"), (CONTAINER, "cntr_1"))
    with pytest.raises(ProxyError) as bad:
        request_references({"input": [{**replayed, "container_id": 7}]}, "/v1/responses")
    assert bad.value.status == 400 and bad.value.param == "input[0].container_id"


def test_an_input_items_page_binds_no_container() -> None:
    # The page shows what the caller sent: a container in it was the caller's
    # to name (checked as it was sent), never one the listing makes its own.
    page = {"object": "list", "data": [
        {"type": "code_interpreter_call", "id": "ci_1", "container_id": "cntr_1"},
        {"type": "shell_call", "id": "sh_2", "call_id": "c",
         "environment": {"type": "container_reference", "container_id": "cntr_2"}}]}
    assert answer_references(page) == ((ITEM, "ci_1"), (ITEM, "sh_2"))
