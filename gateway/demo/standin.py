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
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.demo.standin_answers import REPLY, chat_audio, forced_status, sse, stream_chunks
from gateway.demo.standin_batches import StandInBatches
from gateway.demo.standin_messages import StandInMessages
from gateway.demo.standin_responses import StandInResponses

__all__ = ["REPLY", "StandIn", "main", "start_standin"]


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
        self.responses = StandInResponses(self._read, self._stream)
        self.batches = StandInBatches(self._read)
        self.messages = StandInMessages(self._read, self._stream)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.on_response_prepare.append(_request_ids)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        self.responses.add_routes(app)
        app.router.add_post("/v1/embeddings", self.embeddings)
        self.messages.add_routes(app)
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

    # --- OpenAI -------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if (forced := forced_status(request)) is not None:
            return forced
        model = body.get("model", "unknown")
        usage = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
        if body.get("stream"):
            n = stream_chunks(request)
            events = []
            spoken = chat_audio(body)  # its id in the first chunk, as OpenAI streams it
            for i in range(n):
                chunk = {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": f"tok{i} ",
                                                       **(spoken if i == 0 else {})},
                                 "finish_reason": None}],
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
                        "message": {"role": "assistant", "content": REPLY, **chat_audio(body)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
            dumps=lambda d: orjson.dumps(d).decode(),
        )

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if (forced := forced_status(request)) is not None:
            return forced
        if body.get("stream"):
            base = {"id": "cmpl-standin", "object": "text_completion", "created": 0,
                    "model": body.get("model")}
            events = [
                sse(None, {**base, "choices": [{"index": 0, "text": f"tok{i} ",
                                                "finish_reason": None, "logprobs": None}]})
                for i in range(stream_chunks(request))
            ]
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
                events.append(sse(None, {**base, "choices": [], "usage": usage}))
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
