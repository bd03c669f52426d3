"""A stand-in model API: OpenAI and Anthropic shapes, streaming, usage blocks.

Used by ``gateway serve --demo`` (in-process, on a free loopback port), by
the end-to-end tests (as its own process: ``python -m gateway.demo.standin``)
and by the benchmarks. Answers are small, fixed and deterministic.

Test controls, as request headers the gateway forwards untouched:
``x-standin-delay-ms`` (wait before answering), ``x-standin-chunks`` and
``x-standin-interval-ms`` (stream length and pacing), ``x-standin-status``
(answer with this status), ``x-standin-cache-read-tokens`` (Anthropic answers
report that many prompt tokens read from the prompt cache, apart from
``input_tokens``, as Anthropic does), ``x-standin-output-tokens`` (a
non-streamed Anthropic answer, or a Responses API answer, reports that many
output tokens). ``x-standin-status`` answers an error in the API shape of the
path (Anthropic's on ``/v1/messages*``) with a request id and, on 429/529,
``retry-after``. Every answer carries a request id (``x-request-id`` on OpenAI
paths, ``request-id`` on Anthropic's), as the real APIs do. Streams follow each
API's event grammar: Responses API events with ``event:`` lines, legacy
completions, Anthropic tool use (``input_json_delta``) when the request has
tools and thinking blocks when it asks for them. Responses are kept for
``GET/DELETE /v1/responses/{id}``, ``.../cancel`` and ``.../input_items``;
``background: true`` answers ``queued`` and completes
``x-standin-background-ms`` (300) later, and ``?stream=true&starting_after=N``
streams a stored response's events again. ``GET /_standin/requests`` lists what
arrived (headers and body hash, never bodies), ``GET /_standin/streams`` counts
streams started, finished and cut off by the peer; ``DELETE`` clears both.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import secrets
import struct
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.demo.standin_batches import StandInBatches

REPLY = "Hello from the stand-in model."
MAX_STORED = 10_000
"""Responses kept for retrieval by id; the oldest goes first."""
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 529: "overloaded_error",
}


def _response_id(body: dict[str, Any]) -> str:
    """A new id per answer, as the real API gives: two customers sending the
    same request get different responses, each bound to its own caller."""
    del body  # the id does not depend on the request
    return "resp_" + secrets.token_hex(12)


def _sse(name: str | None, data: dict[str, Any]) -> bytes:
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _response_events(done: dict[str, Any]) -> list[bytes]:
    """A completed response as the Responses API streams it (``sequence_number`` from 0)."""
    part = done["output"][0]["content"][0] if done["output"] else {"type": "output_text",
                                                                    "text": REPLY}
    item = done["output"][0] if done["output"] else {}
    start = {**done, "status": "in_progress", "output": [], "usage": None}
    empty_item = {**item, "status": "in_progress", "content": []}
    where = {"item_id": "msg_standin", "output_index": 0}
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": start}),
        ("response.in_progress", {"response": start}),
        ("response.output_item.added", {"output_index": 0, "item": empty_item}),
        ("response.content_part.added",
         {**where, "content_index": 0, "part": {**part, "text": ""}}),
    ]
    kinds += [
        ("response.output_text.delta",
         {**where, "content_index": 0, "delta": word, "logprobs": []})
        for word in REPLY.split(" ")
    ]
    kinds += [
        ("response.output_text.done",
         {**where, "content_index": 0, "text": REPLY, "logprobs": []}),
        ("response.content_part.done", {**where, "content_index": 0, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": done}),
    ]
    return [
        _sse(kind, {"type": kind, "sequence_number": i, **data})
        for i, (kind, data) in enumerate(kinds)
    ]


@dataclass
class StoredResponse:
    """A response kept for retrieval by id, as ``store: true`` keeps it upstream."""

    done: dict[str, Any]
    """The response once completed."""
    input_items: list[dict[str, Any]]
    ready_at: float | None
    """Background mode: when it completes (``time.monotonic``); None: completed."""
    cancelled: bool = False

    def now(self) -> dict[str, Any]:
        """The response as a retrieval sees it now."""
        if self.cancelled:
            return {**self.done, "status": "cancelled", "output": [], "usage": None,
                    "background": True}
        if self.ready_at is not None and time.monotonic() < self.ready_at:
            return {**self.done, "status": "in_progress", "output": [], "usage": None,
                    "background": True}
        return {**self.done, "background": True} if self.ready_at is not None else self.done


def _background_ready(request: web.Request, body: dict[str, Any]) -> float | None:
    """A background response completes ``x-standin-background-ms`` (300) after its create."""
    if not body.get("background"):
        return None
    return time.monotonic() + int(request.headers.get("x-standin-background-ms", "300")) / 1000


def _input_items(given: object) -> list[dict[str, Any]]:
    """The create's ``input`` as the input items list shows it."""
    items: list[dict[str, Any]] = []
    messages = given if isinstance(given, list) else [{"role": "user", "content": given}]
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "input_text", "text": content}]
        items.append({"id": f"msg_in_{i}", "type": "message", "role": message.get("role", "user"),
                      "status": "completed", "content": content or []})
    return items


def _not_found(response_id: str) -> web.Response:
    doc = {"error": {"message": f"Response with id '{response_id}' not found.",
                     "type": "invalid_request_error", "param": None, "code": None}}
    return web.Response(status=404, body=orjson.dumps(doc), content_type="application/json")


def _output_tokens(request: web.Request, default: int) -> int:
    return int(request.headers.get("x-standin-output-tokens", str(default)))


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
    events = [_sse("content_block_start",
                   {"type": "content_block_start", "index": index, "content_block": block})]
    events += [_sse("content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta})
               for delta in deltas]
    events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


async def _request_ids(request: web.Request, response: web.StreamResponse) -> None:
    """The real APIs name every answer (the SDKs show it as ``request_id``)."""
    if request.path.startswith("/v1/messages"):
        response.headers.setdefault("request-id", "req_standin")
    elif request.path.startswith("/v1/"):
        response.headers.setdefault("x-request-id", "req_standin")
        response.headers.setdefault("openai-processing-ms", "3")


class StandIn:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.streams = {"started": 0, "finished": 0, "cancelled": 0}
        self.record = True
        self.stored: dict[str, StoredResponse] = {}
        self.batches = StandInBatches(self._read)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.on_response_prepare.append(_request_ids)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_get("/v1/responses/{id}", self.retrieve_response)
        app.router.add_delete("/v1/responses/{id}", self.delete_response)
        app.router.add_post("/v1/responses/{id}/cancel", self.cancel_response)
        app.router.add_get("/v1/responses/{id}/input_items", self.response_input_items)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_get("/v1/models", self.models)
        self.batches.add_routes(app)
        app.router.add_get("/_standin/requests", self.list_requests)
        app.router.add_delete("/_standin/requests", self.clear)
        app.router.add_get("/_standin/streams", self.list_streams)
        app.router.add_route("HEAD", "/", self.head)
        return app

    # --- plumbing -----------------------------------------------------------

    async def _read(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if self.record:
            self.requests.append(
                {
                    "path": request.path,
                    "query": request.query_string,
                    "headers": {k.lower(): v for k, v in request.headers.items()},
                    "body_sha256": hashlib.sha256(raw).hexdigest(),
                    "body_len": len(raw),
                    "ts": time.time(),
                }
            )
        delay = int(request.headers.get("x-standin-delay-ms", "0"))
        if delay:
            await asyncio.sleep(delay / 1000)
        body: dict[str, Any] = orjson.loads(raw) if raw else {}
        return body

    @staticmethod
    def _forced_status(request: web.Request) -> web.Response | None:
        status = request.headers.get("x-standin-status")
        if status is None:
            return None
        code = int(status)
        headers = {"x-should-retry": "false"} if code == 400 else {}
        if code in (429, 529):
            headers["retry-after"] = "7"
        if request.path.startswith("/v1/messages"):
            kind = _ANTHROPIC_ERRORS.get(code, "api_error")
            headers["request-id"] = "req_standin_error"
            doc: dict[str, Any] = {
                "type": "error",
                "error": {"type": kind, "message": f"forced by test ({kind})"},
                "request_id": "req_standin_error",
            }
        else:
            headers["x-request-id"] = "req_standin_error"
            doc = {"error": {"message": "forced by test", "type": "api_error", "param": None,
                             "code": f"standin_{code}"}}
        return web.Response(
            status=code, body=orjson.dumps(doc), content_type="application/json", headers=headers
        )

    async def _stream(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        interval = int(request.headers.get("x-standin-interval-ms", "0")) / 1000
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        await response.prepare(request)
        self.streams["started"] += 1
        try:
            for i, event in enumerate(events):
                if interval and i:
                    await asyncio.sleep(interval)
                await response.write(event)
            await response.write_eof()
        except ConnectionResetError:
            # The reader (the gateway, its client gone) hung up mid-stream: an
            # ordinary end for a stream, not a server error worth a traceback.
            self.streams["cancelled"] += 1
            return response
        except asyncio.CancelledError:
            self.streams["cancelled"] += 1
            raise
        self.streams["finished"] += 1
        return response

    @staticmethod
    def _chunks(request: web.Request) -> int:
        return max(1, int(request.headers.get("x-standin-chunks", "5")))

    # --- OpenAI -------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if (forced := self._forced_status(request)) is not None:
            return forced
        model = body.get("model", "unknown")
        usage = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
        if body.get("stream"):
            n = self._chunks(request)
            events = []
            for i in range(n):
                chunk = {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [
                        {"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}
                    ],
                }
                events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
            done = {
                "id": "chatcmpl-standin",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            events.append(b"data: " + orjson.dumps(done) + b"\n\n")
            if (body.get("stream_options") or {}).get("include_usage"):
                final = {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [],
                    "usage": {**usage, "completion_tokens": n},
                }
                events.append(b"data: " + orjson.dumps(final) + b"\n\n")
            events.append(b"data: [DONE]\n\n")
            return await self._stream(request, events)
        return web.json_response(
            {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": REPLY},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
            dumps=lambda d: orjson.dumps(d).decode(),
        )

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if (forced := self._forced_status(request)) is not None:
            return forced
        if body.get("stream"):
            base = {"id": "cmpl-standin", "object": "text_completion", "created": 0,
                    "model": body.get("model")}
            events = [
                _sse(None, {**base, "choices": [{"index": 0, "text": f"tok{i} ",
                                                 "finish_reason": None, "logprobs": None}]})
                for i in range(self._chunks(request))
            ]
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
                events.append(_sse(None, {**base, "choices": [], "usage": usage}))
            events.append(b"data: [DONE]\n\n")
            return await self._stream(request, events)
        return web.json_response(
            {
                "id": "cmpl-standin",
                "object": "text_completion",
                "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "text": REPLY, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            }
        )

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if (forced := self._forced_status(request)) is not None:
            return forced
        part = {"type": "output_text", "text": REPLY, "annotations": []}
        item = {"type": "message", "id": "msg_standin", "role": "assistant",
                "status": "completed", "content": [part]}
        done = {
            # One per conversation turn, as the real API's ids are unique (the
            # gateway binds each to its customer), yet the same for the same
            # request, so a client sees the same answer direct and proxied.
            "id": _response_id(body),
            "object": "response",
            "created_at": 0,
            "model": body.get("model"),
            "status": "completed",
            "previous_response_id": body.get("previous_response_id"),
            "store": body.get("store", True),
            "output": [item],
            "usage": {"input_tokens": 5, "output_tokens": (out := _output_tokens(request, 7)),
                      "total_tokens": 5 + out},
        }
        if body.get("store", True):
            if len(self.stored) >= MAX_STORED:  # a long benchmark does not grow it without end
                del self.stored[next(iter(self.stored))]
            self.stored[done["id"]] = StoredResponse(done, _input_items(body.get("input")),
                                                     _background_ready(request, body))
        if not body.get("stream"):
            if body.get("background"):
                # Background mode: answered at once, queued, without output or
                # usage; the client polls retrieve until it is completed.
                return web.json_response({**done, "status": "queued", "output": [],
                                          "usage": None, "background": True})
            return web.json_response(done)
        events = _response_events(done)
        return await self._stream(request, events)

    async def retrieve_response(self, request: web.Request) -> web.StreamResponse:
        await self._read(request)
        stored = self.stored.get(request.match_info["id"])
        if stored is None:
            return _not_found(request.match_info["id"])
        current = stored.now()
        if request.query.get("stream") != "true":
            return web.json_response(current)
        # Streamed again from the start, or after ``starting_after`` (a client
        # resuming a stream it lost). Only a completed response has events here.
        after = int(request.query.get("starting_after", "-1"))
        events = _response_events(current) if current["status"] == "completed" else [
            _sse("response.in_progress", {"type": "response.in_progress", "sequence_number": 0,
                                          "response": current})]
        return await self._stream(request, events[after + 1 :])

    async def delete_response(self, request: web.Request) -> web.Response:
        await self._read(request)
        response_id = request.match_info["id"]
        if self.stored.pop(response_id, None) is None:
            return _not_found(response_id)
        return web.json_response({"id": response_id, "object": "response", "deleted": True})

    async def cancel_response(self, request: web.Request) -> web.Response:
        await self._read(request)
        stored = self.stored.get(request.match_info["id"])
        if stored is None:
            return _not_found(request.match_info["id"])
        if stored.ready_at is None:
            doc = {"error": {"message": "Only responses created with background=true can be "
                             "cancelled.", "type": "invalid_request_error", "param": None,
                             "code": None}}
            return web.Response(status=400, body=orjson.dumps(doc),
                                content_type="application/json")
        if stored.now()["status"] != "completed":
            stored.cancelled = True
        return web.json_response(stored.now())

    async def response_input_items(self, request: web.Request) -> web.Response:
        await self._read(request)
        stored = self.stored.get(request.match_info["id"])
        if stored is None:
            return _not_found(request.match_info["id"])
        items = stored.input_items
        return web.json_response({
            "object": "list", "data": items, "has_more": False,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
        })

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        vector: list[float] | str = [0.0, 0.1, 0.2]
        if body.get("encoding_format") == "base64":  # little-endian float32, as OpenAI
            vector = base64.b64encode(struct.pack("<3f", 0.0, 0.1, 0.2)).decode()
        return web.json_response(
            {
                "object": "list",
                "model": body.get("model"),
                "data": [{"object": "embedding", "index": 0, "embedding": vector}],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    # --- Anthropic ----------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if (forced := self._forced_status(request)) is not None:
            return forced
        model = body.get("model", "unknown")
        usage: dict[str, int] = {"input_tokens": 12}
        if cached := int(request.headers.get("x-standin-cache-read-tokens", "0")):
            usage |= {"cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}
        if body.get("stream"):
            n = self._chunks(request)

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
            events += [
                ev(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {
                            "stop_reason": "tool_use" if body.get("tools") else "end_turn",
                            "stop_sequence": None,
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
                "content": [{"type": "text", "text": REPLY}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {**usage, "output_tokens": _output_tokens(request, 7)},
            }
        )

    async def count_tokens(self, request: web.Request) -> web.Response:
        await self._read(request)
        return web.json_response({"input_tokens": 12})

    # --- test inspection ----------------------------------------------------

    async def list_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.requests)

    async def clear(self, request: web.Request) -> web.Response:
        self.requests.clear()
        self.streams.update(started=0, finished=0, cancelled=0)
        return web.json_response({"ok": True})

    async def list_streams(self, request: web.Request) -> web.Response:
        return web.json_response(self.streams)

    async def head(self, request: web.Request) -> web.Response:
        return web.Response()


async def start_standin(
    host: str = "127.0.0.1", port: int = 0, record: bool = True
) -> tuple[web.AppRunner, int]:
    """Start the stand-in on this event loop; returns the runner and the bound port."""
    standin = StandIn()
    standin.record = record
    runner = web.AppRunner(standin.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)


def main() -> None:
    parser = argparse.ArgumentParser(description="Stand-in model API (OpenAI and Anthropic shapes)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--no-record", action="store_true", help="do not keep a log of requests")
    args = parser.parse_args()
    standin = StandIn()
    standin.record = not args.no_record
    web.run_app(standin.app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
