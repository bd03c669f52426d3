"""The body facts the policy decides on (``gateway.proxy.body.parse_body``)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

import orjson
import pytest

from gateway.proxy.body import parse_body, parse_request_body
from gateway.proxy.errors import ProxyError

CHAT = "/v1/chat/completions"


def test_the_largest_output_bound_is_the_one_decided_on() -> None:
    facts = parse_body(orjson.dumps({
        "model": "haiku-lite", "messages": [], "max_tokens": 10, "max_completion_tokens": 100_000,
    }))
    assert facts.max_tokens == 100_000
    assert parse_body(b'{"model": "m", "max_output_tokens": 7}').max_tokens == 7
    assert parse_body(b'{"model": "m"}').max_tokens is None
    with pytest.raises(ProxyError) as refused:
        parse_body(b'{"model": "m", "max_tokens": 10, "max_completion_tokens": "many"}')
    assert refused.value.param == "max_completion_tokens"


def test_prompt_text_is_every_string_but_ids_roles_and_binary_data() -> None:
    facts = parse_body(orjson.dumps({
        "model": "haiku-lite",
        "system": "sys",
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "QkFTRTY0"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                "data": "doc"}},
            ]},
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "f", "arguments": "{\"a\": \"args\"}"}}]},
        ],
        "tools": [{"name": "t", "description": "desc", "input_schema": {"type": "object"}}],
    }))
    for text in ("sys", "doc", "args", "desc"):
        assert text in facts.prompt_text
    for not_text in ("QkFTRTY0", "call_1", "haiku-lite", "assistant", "image/png"):
        assert not_text not in facts.prompt_text
    assert facts.has_tools and facts.message_count == 2


def test_images_and_files_count_toward_the_input_estimate() -> None:
    """Binary parts are not text, but the model reads them as input tokens: the
    reservation must not see a request with ten images as a one-line prompt."""
    text_only = parse_body(orjson.dumps({
        "model": "m", "messages": [{"role": "user", "content": "look"}]}))
    pdf = "A" * 400_000  # base64 of a 300 KB file
    with_media = parse_body(orjson.dumps({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            *[{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                           "data": "QkFTRTY0"}}] * 3,
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                            "data": pdf}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                            "data": "doc"}},
            {"type": "file", "file": {"file_id": "file-1"}},
        ]}],
    }))
    extra = with_media.input_tokens_estimate - text_only.input_tokens_estimate
    # 4 images and a file by id at 1,600 each, the inline PDF at its decoded size,
    # the text document by its text only (four bytes with its separator: one token).
    assert extra == 5 * 1_600 + 300_000 // 4 + 1
    responses = parse_body(orjson.dumps({
        "model": "m", "input": [{"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,QkFTRTY0"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,QkFTRTY0"},
        ]}]}))
    assert responses.input_tokens_estimate >= 2 * 1_600


def test_a_property_called_type_is_not_taken_for_a_part_type() -> None:
    """``{"properties": {"type": {...}}}`` used to raise TypeError (a dict is
    unhashable), a 500 with no decision record."""
    schema = {"type": "object", "properties": {"type": {"type": "string", "enum": ["a"]}}}
    facts = parse_body(orjson.dumps({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "t", "input_schema": schema}],
    }))
    assert facts.has_tools and "hi" in facts.prompt_text


def test_schemas_and_tool_inputs_are_read_whole_but_hashed_as_before() -> None:
    def body(name: str) -> bytes:
        return orjson.dumps({
            "model": "m",
            "messages": [{"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "n", "input": {"url": "in the input"}}]}],
            "tools": [{"name": "n", "input_schema": {"type": "object", "properties": {
                name: {"type": "string"}, "data": {"description": "under data"}}}}],
        })
    facts = parse_body(body("a property named like a sentence"))
    for text in ("a property named like a sentence", "in the input", "under data"):
        assert text in facts.prompt_text
    # prompt_sha256 (account-farm links) covers what it covered before: the
    # property's description, not its name or the input under "url".
    assert facts.prompt_sha256 == parse_body(body("another name")).prompt_sha256
    assert "t1" not in facts.prompt_text


@pytest.mark.parametrize("conversation", [
    {"messages": [{"role": "tool", "tool_call_id": "c", "content": "ok"}]},
    {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                        "function": {"name": "f"}}]}]},
    {"messages": [{"role": "function", "name": "f", "content": "ok"}]},
    {"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}]},
    {"messages": [{"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]},
    {"input": [{"type": "function_call_output", "call_id": "c", "output": "ok"}]},
    {"input": [{"type": "mcp_list_tools", "server_label": "x", "tools": []}]},
])
def test_tool_use_in_the_conversation_is_tool_use(conversation: dict[str, object]) -> None:
    assert parse_body(orjson.dumps({"model": "m", **conversation})).has_tools


def test_web_search_options_are_tool_use() -> None:
    """Chat completions' ``web_search_options`` has the model search the web
    with no ``tools`` array (the search models): a tool it runs, so agentic,
    as Anthropic's web search tool and Responses' ``web_search`` tool are."""
    body = {"model": "m", "messages": [{"role": "user", "content": "news?"}]}
    assert parse_body(orjson.dumps({**body, "web_search_options": {}})).has_tools
    assert not parse_body(orjson.dumps({**body, "web_search_options": None})).has_tools
    with pytest.raises(ProxyError) as bad:
        parse_body(orjson.dumps({**body, "web_search_options": "yes"}))
    assert bad.value.status == 400


def test_no_tool_use_is_not_tool_use() -> None:
    for body in (
        {"messages": [{"role": "assistant", "content": "hi", "tool_calls": []}]},
        {"messages": [{"role": {"odd": "role"}, "content": "hi"}]},
        {"input": [{"type": "message", "role": "user", "content": "the function_call"}]},
        {"text": {"format": {"type": "json_schema", "name": "s", "schema": {"properties": {
            "tool_calls": {"type": "array"}, "kind": {"enum": ["a"], "type": "web_search_call"},
        }}}}},
    ):
        assert not parse_body(orjson.dumps({"model": "m", **body})).has_tools


def test_the_answers_asked_for_multiply_the_output_bound() -> None:
    def answers(**body: object) -> int:
        return parse_body(orjson.dumps({"model": "m", **body})).answers

    assert answers() == 1 and answers(n=4) == 4
    assert answers(prompt="a", n=2, best_of=5) == 5
    assert answers(prompt=["a", "b", "c"], n=2) == 6
    assert answers(prompt=[[1, 2], [3]]) == 2 and answers(prompt=[1, 2, 3]) == 1
    for bad in ({"n": 0}, {"n": "2"}, {"best_of": True}):
        with pytest.raises(ProxyError):
            parse_body(orjson.dumps({"model": "m", **bad}))


@pytest.mark.parametrize(("fields", "logprobs", "reasoning"), [
    ({}, False, False),
    ({"logprobs": True}, True, False),
    ({"logprobs": False, "top_logprobs": 0}, False, False),
    ({"top_logprobs": 3}, True, False),
    ({"prompt": "x", "logprobs": 0}, True, False),
    ({"include": ["message.output_text.logprobs"]}, True, False),
    ({"include": ["reasoning.encrypted_content"]}, False, False),
    ({"reasoning": {"effort": "high"}}, False, False),
    ({"reasoning": {"effort": "low", "summary": "auto"}}, False, True),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, False, True),
    ({"thinking": {"type": "disabled"}}, False, False),
])
def test_log_probabilities_and_reasoning_asked_for(
    fields: dict[str, object], logprobs: bool, reasoning: bool
) -> None:
    facts = parse_body(orjson.dumps({"model": "m", **fields}))
    assert (facts.logprobs, facts.reasoning) == (logprobs, reasoning)


def _held_bytes(make: Callable[[], bytes]) -> tuple[int, int]:
    """(bytes still allocated after ``make()``, length of what it returned): what
    a forwarded body keeps allocated while its request is in flight."""
    make()  # first call: lazy caches and interned names are not the body's
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = make()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before, len(kept)
    finally:
        tracemalloc.stop()


def test_the_forwarded_body_holds_no_more_memory_than_its_length() -> None:
    """orjson (3.12 and later) hands back bytes whose allocation is at least
    4 KB (a power of two at or above what it wrote) and never shrinks it; a
    forwarded body lives as long as its request, so 500 concurrent streams
    of a 200-byte prompt held 2 MB for nothing, and a 256 KB prompt held
    several MB. What is forwarded is an exact-size copy."""
    raw = orjson.dumps({"model": "haiku-lite", "stream": True, "max_tokens": 16,
                        "messages": [{"role": "user", "content": "hello " * 20}]})
    held, length = _held_bytes(lambda: parse_request_body(raw, CHAT, lambda: None)[1])
    # orjson's buffer for it is 4 KB (held 4089 unfixed); late in the whole
    # suite the interpreter's own allocations meanwhile reached ~580 bytes.
    assert held < length + 2048, (held, length)
    big = orjson.dumps({"model": "haiku-lite", "max_tokens": 16,
                        "messages": [{"role": "user", "content": "x" * 300_000}]})
    held, length = _held_bytes(lambda: parse_request_body(big, CHAT, lambda: None)[1])
    # orjson's buffer for it is ~4 MB; a few KB of slack for whatever else the
    # interpreter keeps meanwhile (late in the whole suite it kept ~1.2 KB).
    assert held < length + 8192, (held, length)
