"""The SSE tap (``gateway.proxy.usage.SseUsageTap``): usage and error events
are read from every legal framing, and the bytes relayed are the upstream's,
minus only the usage chunk the gateway asked for on the client's behalf."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from gateway.proxy.usage import SseUsageTap

CHUNK = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0,
                                                                    "delta": {"content": "hi"}}]}
USAGE = {"id": "c", "object": "chat.completion.chunk", "choices": [],
         "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}}


def _stream(eol: bytes) -> tuple[bytes, bytes]:
    """(what the upstream sends, what the client must get) with this line end."""
    first = b"data: " + orjson.dumps(CHUNK) + eol + eol
    usage = b"data: " + orjson.dumps(USAGE) + eol + eol
    done = b"data: [DONE]" + eol + eol
    return first + first + usage + done, first + first + done


def _relay(tap: SseUsageTap, pieces: list[bytes]) -> bytes:
    return b"".join(tap.feed(piece) for piece in pieces) + tap.flush()


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_ending_is_framed_and_the_usage_chunk_dropped(eol: bytes) -> None:
    sent, expected = _stream(eol)
    # Split at every offset, so that boundaries (and CRLF pairs) straddle chunks.
    for cut in range(1, len(sent)):
        tap = SseUsageTap(drop_usage_only_chunk=True)
        assert _relay(tap, [sent[:cut], sent[cut:]]) == expected, cut
        assert tap.seen and (tap.usage.tokens_in, tap.usage.tokens_out) == (12, 7)
    passthrough = SseUsageTap(drop_usage_only_chunk=False)
    assert b"".join(passthrough.feed(sent[i : i + 7]) for i in range(0, len(sent), 7)) == sent
    assert passthrough.seen and passthrough.usage.tokens_out == 7


def test_complete_events_are_forwarded_at_once_not_held_to_the_end() -> None:
    sent, _ = _stream(b"\r\n")
    first_event = sent[: sent.index(b"\r\n\r\n") + 4]
    tap = SseUsageTap(drop_usage_only_chunk=True)
    assert tap.feed(first_event) == first_event


def test_an_event_split_over_many_chunks_is_reassembled() -> None:
    big = {**CHUNK, "choices": [{"index": 0, "delta": {"content": "x" * 100_000}}]}
    sent = b"".join(b"data: " + orjson.dumps(doc) + b"\r\n\r\n" for doc in (big, USAGE))
    tap = SseUsageTap(drop_usage_only_chunk=True)
    out = _relay(tap, [sent[i : i + 1000] for i in range(0, len(sent), 1000)])
    assert out == sent[: sent.index(b"\r\n\r\n") + 4]
    assert tap.usage.tokens_in == 12


def test_an_error_event_is_noted() -> None:
    anthropic = (b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
                 b'{"input_tokens":5,"output_tokens":1}}}\n\n'
                 b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                 b'"message":"Overloaded"}}\n\n')
    tap = SseUsageTap(drop_usage_only_chunk=False)
    tap.feed(anthropic)
    assert tap.error == "upstream_error_event:overloaded_error"
    openai = b'data: {"error":{"message":"boom","type":"server_error"}}\r\n\r\n'
    tap = SseUsageTap(drop_usage_only_chunk=True)
    assert tap.feed(openai) == openai
    assert tap.error == "upstream_error_event:server_error"
    text = b'data: {"choices":[{"delta":{"content":"an error in my code"}}]}\n\n'
    tap = SseUsageTap(drop_usage_only_chunk=False)
    tap.feed(text)
    assert tap.error is None


def test_anthropic_prompt_cache_tokens_count_as_input() -> None:
    from gateway.proxy.usage import usage_from_json

    usage = usage_from_json(
        b'{"usage": {"input_tokens": 12, "cache_creation_input_tokens": 100,'
        b' "cache_read_input_tokens": 800, "output_tokens": 7}}'
    )
    assert usage is not None and (usage.tokens_in, usage.tokens_out) == (912, 7)
    openai = usage_from_json(
        b'{"usage": {"prompt_tokens": 900, "completion_tokens": 7,'
        b' "prompt_tokens_details": {"cached_tokens": 800}}}'
    )
    assert openai is not None and openai.tokens_in == 900  # cached are included already


def test_events_that_only_mention_the_marker_are_not_kept() -> None:
    """The marker (``code_execution_tool_result``, a chat answer's ``"audio"``)
    only picks the events worth parsing for ids. A model asked to repeat the
    word put it in every text delta, and each such event was kept, parsed, for
    the whole stream: tens of MB per stream, for any customer who asked (and
    every chunk of a streamed audio answer, its base64 audio included)."""
    marker = b"code_execution_tool_result"
    text = {"type": "text_delta", "text": "code_execution_tool_result " * 4}
    delta = {"type": "content_block_delta", "index": 0, "delta": text}
    event = b"event: content_block_delta\ndata: " + orjson.dumps(delta) + b"\n\n"
    tap = SseUsageTap(drop_usage_only_chunk=False, marker=marker)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            tap.feed(event)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 20,000 parsed events held ~20 MB; what stays must not grow with them.
    assert held < 256 * 1024, held


def test_a_streams_terminal_event_is_known_only_at_a_line_start() -> None:
    from gateway.proxy.usage import ends_stream

    assert ends_stream(b'data: {"choices": []}\n\ndata: [DONE]\n\n')
    assert ends_stream(b"event: message_stop\ndata: {}\n\n")
    assert ends_stream(b'event: response.completed\r\ndata: {"type": "response.completed"}\r\n\r\n')
    # A model's text saying so is inside a JSON string, where newlines are escaped.
    assert not ends_stream(b'data: {"delta": {"content": "\\ndata: [DONE]"}}\n\n')
    assert not ends_stream(b'event: content_block_delta\ndata: {"text": "event: message_stop"}\n\n')
