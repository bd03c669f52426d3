"""The stand-in's Messages API (Anthropic): ``/v1/messages`` and its token count.

Streams follow Anthropic's event grammar: a text block, then a thinking block
(with its signature) when the request asks for one, and a tool call whose
input arrives as ``input_json_delta`` pieces when the request has tools.
The Message Batches API is ``standin_batches``'.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.demo.standin_answers import (
    REPLY,
    code_execution_blocks,
    container_of,
    forced_status,
    output_tokens,
    sse,
    stream_chunks,
)
from gateway.demo.standin_responses import Read, Stream


def _extra_blocks(body: dict[str, Any], index: int) -> list[bytes]:
    """The streamed blocks after the text: thinking (when asked for, with its
    signature) and a tool call whose input arrives as ``input_json_delta``
    pieces that are not JSON on their own (when the request has tools)."""
    events: list[bytes] = []
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        block: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": "Let me think \u2014 "},
                  {"type": "thinking_delta", "thinking": "carefully."},
                  {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}]
        events += _block(index, block, deltas)
        index += 1
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        block = {"type": "tool_use", "id": "toolu_standin", "name": tools[0].get("name"),
                 "input": {}}
        pieces = ['{"city": "Par', 'is", "unit', '": "c"}']
        events += _block(
            index, block, [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        )
    return events


def _block(index: int, block: dict[str, Any], deltas: list[dict[str, Any]]) -> list[bytes]:
    events = [sse("content_block_start",
                  {"type": "content_block_start", "index": index, "content_block": block})]
    events += [sse("content_block_delta",
                   {"type": "content_block_delta", "index": index, "delta": delta})
               for delta in deltas]
    events.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


class StandInMessages:
    """``/v1/messages*`` on the stand-in; ``read`` logs the request, ``stream`` sends events."""

    def __init__(self, read: Read, stream: Stream) -> None:
        self._read = read
        self._stream = stream

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if (forced := forced_status(request)) is not None:
            return forced
        model = body.get("model", "unknown")
        container = container_of(body)
        usage: dict[str, int] = {"input_tokens": 12}
        if cached := int(request.headers.get("x-standin-cache-read-tokens", "0")):
            usage |= {"cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}
        if body.get("stream"):
            n = stream_chunks(request)

            def ev(name: str, data: dict[str, Any]) -> bytes:
                return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

            events = [
                ev(
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {
                            "id": "msg_standin",
                            "type": "message",
                            "role": "assistant",
                            "model": model,
                            "content": [],
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": {**usage, "output_tokens": 1},
                        },
                    },
                ),
                ev(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
            ]
            for i in range(n):
                events.append(
                    ev(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": f"tok{i} "},
                        },
                    )
                )
            events.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
            extra = _extra_blocks(body, 1)
            events += extra
            for index, ran in enumerate(code_execution_blocks(body), 1 + len(extra) // 5):
                events += _block(index, ran, [])
            events += [
                ev(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {
                            "stop_reason": "tool_use" if body.get("tools") else "end_turn",
                            "stop_sequence": None,
                            "container": container,
                        },
                        "usage": {"output_tokens": n},
                    },
                ),
                ev("message_stop", {"type": "message_stop"}),
            ]
            return await self._stream(request, events)
        return web.json_response(
            {
                "id": "msg_standin",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": REPLY}, *code_execution_blocks(body)],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "container": container,
                "usage": {**usage, "output_tokens": output_tokens(request, 7)},
            }
        )

    async def count_tokens(self, request: web.Request) -> web.Response:
        await self._read(request)
        return web.json_response({"input_tokens": 12})
