"""A fast stand-in model API for the benchmarks: fixed bytes over a raw asyncio protocol.

``gateway/demo/standin.py`` (aiohttp.web) is the functional stand-in the tests
use; measured alone on the 2-core machine it serves far fewer requests per
second than this one and costs more CPU per request, so as the upstream of a
benchmark it would eat the CPU the proxy under test needs and put its own
latency into every figure (see docs/benchmarks.md). This server parses just
enough HTTP/1.1 (request line, headers, Content-Length body, keep-alive) and
answers with precomputed bytes:

* ``POST`` with ``"stream": true`` in the body: an SSE stream of N chunks
  (``x-standin-chunks``, default 5) paced ``x-standin-interval-ms`` apart
  (default 0), in OpenAI chat shape (or Anthropic shape on ``/v1/messages``),
  chunked transfer encoding, with a usage chunk when the body asks
  ``include_usage``.
* any other ``POST``: a small fixed JSON answer with ``usage``.
* ``GET``/``HEAD``: 200 with a tiny body (readiness and the gateway's ping).

The direct baseline, the bare proxy and the gateway all talk to this same
server, so the upstream's cost is identical in every column.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import orjson

_OPENAI_JSON = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "haiku-lite",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
)
_ANTHROPIC_JSON = orjson.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "haiku-lite",
        "content": [{"type": "text", "text": "Hello from the bench upstream."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 7},
    }
)


def _json_response(body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


_OPENAI_RESPONSE = _json_response(_OPENAI_JSON)
_ANTHROPIC_RESPONSE = _json_response(_ANTHROPIC_JSON)
_OK_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
_HEAD_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_LAST_CHUNK = b"0\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _openai_events(n: int, usage: bool) -> list[bytes]:
    events = []
    for i in range(n):
        doc = {
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
            "model": "haiku-lite",
            "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
        }
        events.append(b"data: " + orjson.dumps(doc) + b"\n\n")
    done = {
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
        "model": "haiku-lite", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    events[-1] += b"data: " + orjson.dumps(done) + b"\n\n"
    if usage:
        final = {
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
            "model": "haiku-lite", "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n},
        }
        events[-1] += b"data: " + orjson.dumps(final) + b"\n\n"
    events[-1] += b"data: [DONE]\n\n"
    return [_chunk(e) for e in events]


def _anthropic_events(n: int) -> list[bytes]:
    def ev(name: str, doc: object) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(doc) + b"\n\n"

    start = ev("message_start", {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "haiku-lite",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1}}})
    start += ev("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}})
    events = []
    for i in range(n):
        delta = {"type": "text_delta", "text": f"tok{i} "}
        events.append(ev("content_block_delta",
                         {"type": "content_block_delta", "index": 0, "delta": delta}))
    events[0] = start + events[0]
    events[-1] += ev("content_block_stop", {"type": "content_block_stop", "index": 0})
    events[-1] += ev("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": n}})
    events[-1] += ev("message_stop", {"type": "message_stop"})
    return [_chunk(e) for e in events]


_EVENT_CACHE: dict[tuple[str, int, bool], list[bytes]] = {}


def _events(api: str, n: int, usage: bool) -> list[bytes]:
    key = (api, n, usage)
    cached = _EVENT_CACHE.get(key)
    if cached is None:
        cached = _anthropic_events(n) if api == "anthropic" else _openai_events(n, usage)
        _EVENT_CACHE[key] = cached
    return cached


class _Stream:
    """One paced SSE stream, driven by loop.call_later (no task per stream)."""

    __slots__ = ("chunks", "i", "interval", "loop", "transport")

    def __init__(self, transport: asyncio.Transport, chunks: list[bytes], interval: float) -> None:
        self.transport = transport
        self.chunks = chunks
        self.interval = interval
        self.i = 0
        self.loop = asyncio.get_running_loop()

    def step(self) -> None:
        if self.transport.is_closing():
            return
        if not self.interval:
            self.transport.write(b"".join(self.chunks) + _LAST_CHUNK)
            return
        self.transport.write(self.chunks[self.i])
        self.i += 1
        if self.i == len(self.chunks):
            self.transport.write(_LAST_CHUNK)
            return
        self.loop.call_later(self.interval, self.step)


class UpstreamProtocol(asyncio.Protocol):
    __slots__ = ("buffer", "transport")

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        while self.buffer:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            lower = head.lower()
            pos = lower.find(b"\r\ncontent-length:")
            if pos >= 0:
                stop = lower.find(b"\r\n", pos + 2)
                try:
                    length = int(lower[pos + 17 : stop if stop >= 0 else None])
                except ValueError:
                    self._fail()
                    return
            elif b"\r\ntransfer-encoding:" in lower:
                self._fail()  # chunked request bodies are not needed by the bench
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[end + 4 : total]
            self.buffer = self.buffer[total:]
            self._answer(head, lower, body)

    def _fail(self) -> None:
        assert self.transport is not None
        self.transport.write(_BAD_REQUEST)
        self.transport.close()
        self.buffer = b""

    def _answer(self, head: bytes, lower: bytes, body: bytes) -> None:
        transport = self.transport
        assert transport is not None
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0]
        if method == b"HEAD":
            transport.write(_HEAD_RESPONSE)
            return
        if method != b"POST":
            transport.write(_OK_RESPONSE)
            return
        anthropic = path.startswith(b"/v1/messages")
        if b'"stream"' not in body or not _wants_stream(body):
            transport.write(_ANTHROPIC_RESPONSE if anthropic else _OPENAI_RESPONSE)
            return
        chunks = int(_header(lower, b"x-standin-chunks") or 5)
        interval = int(_header(lower, b"x-standin-interval-ms") or 0) / 1000
        usage = b'"include_usage"' in body and _wants_usage(body)
        events = _events("anthropic" if anthropic else "openai", max(1, chunks), usage)
        transport.write(_STREAM_HEAD)
        _Stream(transport, events, interval).step()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _header(lower_head: bytes, name: bytes) -> bytes | None:
    pos = lower_head.find(b"\r\n" + name + b":")
    if pos < 0:
        return None
    start = pos + len(name) + 3
    stop = lower_head.find(b"\r\n", start)
    return lower_head[start : stop if stop >= 0 else None].strip()


def _wants_stream(body: bytes) -> bool:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and doc.get("stream") is True


def _wants_usage(body: bytes) -> bool:
    doc = orjson.loads(body)
    options = doc.get("stream_options") if isinstance(doc, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Fast fixed-bytes upstream for benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
