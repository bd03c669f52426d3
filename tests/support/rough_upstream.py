"""A model API that misbehaves on request, at the byte level.

The stand-in (``gateway.demo.standin``) is a well-behaved aiohttp server; the
failures here need control of every byte: a body shorter than its
``Content-Length``, an ``Expect: 100-continue`` never answered, CRLF-framed
SSE, a gzip answer, a mid-stream error event. The behaviour is the request
header ``x-rough`` (the gateway forwards it untouched). ``GET /_rough/log``
lists what happened: one entry per request (its headers) and ``peer_closed``
when the gateway hung up before the answer was complete.

Run as ``python -m tests.support.rough_upstream --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import time
from typing import Any

CHAT_ANSWER = {
    "id": "chatcmpl-rough", "object": "chat.completion", "created": 0, "model": "haiku-lite",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "rough"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
}
LOG: list[dict[str, Any]] = []


def _chunk(content: str | None, usage: bool = False) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 0,
                            "model": "haiku-lite"}
    if usage:
        return {**base, "choices": [],
                "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}
    delta = {"content": content} if content is not None else {}
    return {**base, "choices": [{"index": 0, "delta": delta,
                                 "finish_reason": None if content is not None else "stop"}]}


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _json_answer(body: bytes, status: int = 200, **extra: str) -> bytes:
    headers = {"content-type": "application/json", "content-length": str(len(body)), **extra}
    return _head(status, headers) + body


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    first, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    path = first.split(" ")[1]
    # ``Expect: 100-continue`` is never answered with a 100 (an origin may
    # skip it, RFC 9110 10.1.1): a client that waits for it waits here.
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return path, headers, body


async def _stream(writer: asyncio.StreamWriter, events: list[bytes], pace: float) -> None:
    writer.write(_head(200, {"content-type": "text/event-stream",
                             "transfer-encoding": "chunked"}))
    for event in events:
        writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
        await writer.drain()
        if pace:
            await asyncio.sleep(pace)
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def _answer(writer: asyncio.StreamWriter, mode: str, path: str, body: bytes) -> bool:
    """Write the answer for ``mode``; False if the connection must close after it."""
    request = json.loads(body) if body else {}
    if mode == "gzip-always":
        packed = gzip.compress(json.dumps(CHAT_ANSWER).encode())
        writer.write(_json_answer(packed, **{"content-encoding": "gzip"}))
    elif mode == "crlf":
        eol = b"\r\n"
        events = [b"data: " + json.dumps(_chunk(f"t{i}")).encode() + eol + eol for i in range(4)]
        events.append(b"data: " + json.dumps(_chunk(None)).encode() + eol + eol)
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(b"data: " + json.dumps(_chunk(None, usage=True)).encode() + eol + eol)
        events.append(b"data: [DONE]" + eol + eol)
        await _stream(writer, events, 0.2)
    elif mode == "error-event":
        events = [
            b'event: message_start\ndata: {"type":"message_start","message":{"id":"m",'
            b'"type":"message","role":"assistant","model":"haiku-lite","content":[],'
            b'"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}\n\n',
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
            b'"message":"Overloaded"}}\n\n',
        ]
        await _stream(writer, events, 0)
    elif mode == "sse-split":
        # Multi-byte characters cut mid-sequence across writes, keep-alive
        # comments and ``retry:`` fields: all legal SSE.
        text = "h\u00e9llo \U0001f30d \u4e16\u754c"
        events = [b": keep-alive\n\n"]
        for piece in (text, text):
            data = json.dumps(_chunk(piece), ensure_ascii=False).encode()
            events.append(b"retry: 1000\ndata: " + data + b"\n\n")
            events.append(b": ping\n\n")
        events.append(b"data: " + json.dumps(_chunk(None)).encode() + b"\n\n")
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(b"data: " + json.dumps(_chunk(None, usage=True)).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        whole = b"".join(events)
        await _stream(writer, [whole[i : i + 7] for i in range(0, len(whole), 7)], 0)
    elif mode == "gzip-stream":
        events = [b"data: " + json.dumps(_chunk(f"t{i}")).encode() + b"\n\n" for i in range(3)]
        events.append(b"data: " + json.dumps(_chunk(None)).encode() + b"\n\n")
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(b"data: " + json.dumps(_chunk(None, usage=True)).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        packed = gzip.compress(b"".join(events))
        writer.write(_head(200, {"content-type": "text/event-stream", "content-encoding": "gzip",
                                 "content-length": str(len(packed))}) + packed)
    elif mode == "short-body":
        writer.write(_head(200, {"content-type": "application/json", "content-length": "500"}))
        writer.write(b'{"id": "cut')
        await writer.drain()
        return False
    elif mode == "ratelimit":
        writer.write(_json_answer(json.dumps(CHAT_ANSWER).encode(), **{
            "x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "9999",
            "anthropic-ratelimit-requests-limit": "4000", "openai-organization": "platform-org",
            "x-request-id": "req_rough"}))
    elif mode == "unauthorized":
        error = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                           "code": "invalid_api_key"}}
        writer.write(_json_answer(json.dumps(error).encode(), status=401))
    elif mode == "slow":
        await asyncio.sleep(4)
        writer.write(_json_answer(json.dumps(CHAT_ANSWER).encode()))
    elif mode == "huge":
        size = 20 * 1024 * 1024
        writer.write(_head(200, {"content-type": "application/json",
                                 "content-length": str(size + 2)}))
        writer.write(b'"' + b"x" * size + b'"')
    else:
        writer.write(_json_answer(json.dumps(CHAT_ANSWER).encode()))
    await writer.drain()
    return True


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (request := await _read_request(reader)) is not None:
            path, headers, body = request
            if path == "/_rough/log":
                writer.write(_json_answer(json.dumps(LOG).encode()))
                await writer.drain()
                continue
            entry: dict[str, Any] = {"path": path, "headers": headers, "ts": time.time()}
            LOG.append(entry)
            # While answering, a read that ends means the peer hung up early.
            watch = asyncio.ensure_future(reader.read(1))
            answer = asyncio.ensure_future(_answer(writer, headers.get("x-rough", ""), path, body))
            done, _ = await asyncio.wait({watch, answer}, return_when=asyncio.FIRST_COMPLETED)
            if answer not in done:
                entry["peer_closed"] = time.time()
                answer.cancel()
                return
            if watch.done() or not answer.result():
                return
            watch.cancel()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
