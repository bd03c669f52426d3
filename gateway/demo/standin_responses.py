"""The stand-in's Responses API store (OpenAI), in memory.

Responses created with ``store`` (the default) are kept for
``GET/DELETE /v1/responses/{id}``, ``.../cancel`` and ``.../input_items``;
``background: true`` answers ``queued`` and completes
``x-standin-background-ms`` (300) later, and ``?stream=true&starting_after=N``
streams a stored response's events again. A code interpreter or file search
tool runs (its call is an output item) and the answer's text cites a file it
found or wrote (``annotations``; streamed as ``response.output_text.annotation.added``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.demo.standin_answers import REPLY, forced_status, output_tokens, sse

MAX_STORED = 10_000
"""Responses kept for retrieval by id; the oldest goes first."""


def _response_id(body: dict[str, Any]) -> str:
    """A new id per answer, as the real API gives: two customers sending the
    same request get different responses, each bound to its own caller."""
    del body  # the id does not depend on the request
    return "resp_" + secrets.token_hex(12)


def _response_events(done: dict[str, Any]) -> list[bytes]:
    """A completed response as the Responses API streams it (``sequence_number``
    from 0): each tool item added and done, then the message's events, its
    annotations (``response.output_text.annotation.added``) after its text."""
    output = done["output"]
    item = output[-1] if output else {}
    part = item["content"][0] if output else {"type": "output_text", "text": REPLY,
                                              "annotations": []}
    index = max(len(output) - 1, 0)
    start = {**done, "status": "in_progress", "output": [], "usage": None}
    empty_item = {**item, "status": "in_progress", "content": []}
    where = {"item_id": item.get("id", ""), "output_index": index}
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": start}),
        ("response.in_progress", {"response": start}),
    ]
    for tool_index, tool in enumerate(output[:-1]):
        kinds += [
            ("response.output_item.added",
             {"output_index": tool_index, "item": {**tool, "status": "in_progress"}}),
            ("response.output_item.done", {"output_index": tool_index, "item": tool}),
        ]
    kinds += [
        ("response.output_item.added", {"output_index": index, "item": empty_item}),
        ("response.content_part.added",
         {**where, "content_index": 0, "part": {**part, "text": "", "annotations": []}}),
    ]
    kinds += [
        ("response.output_text.delta",
         {**where, "content_index": 0, "delta": word, "logprobs": []})
        for word in REPLY.split(" ")
    ]
    kinds += [
        ("response.output_text.annotation.added",
         {**where, "content_index": 0, "annotation_index": i, "annotation": annotation})
        for i, annotation in enumerate(part.get("annotations", ()))
    ]
    kinds += [
        ("response.output_text.done",
         {**where, "content_index": 0, "text": REPLY, "logprobs": []}),
        ("response.content_part.done", {**where, "content_index": 0, "part": part}),
        ("response.output_item.done", {"output_index": index, "item": item}),
        ("response.completed", {"response": done}),
    ]
    return [
        sse(kind, {"type": kind, "sequence_number": i, **data})
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
        if message.get("type", "message") != "message":
            # Any other item (a replayed tool call, say) is listed as sent, its
            # container_id included, as the real API lists it.
            items.append({**message, "id": message.get("id") or _item_id("item")})
            continue
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "input_text", "text": content}]
        del i  # ids are unique per item, as the real API's (the gateway binds them)
        items.append({"id": _item_id("msg"), "type": "message", "role": message.get("role", "user"),
                      "status": "completed", "content": content or []})
    return items


def _item_id(prefix: str) -> str:
    return f"{prefix}_" + secrets.token_hex(12)


def _tool_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``code_interpreter_call`` per code interpreter tool, in the container
    the tool names (an id) or a new one (``{"type": "auto"}``), and a
    ``file_search_call`` per file search tool."""
    items: list[dict[str, Any]] = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and tool.get("type") == "code_interpreter":
            given = tool.get("container")
            container = given if isinstance(given, str) else _item_id("cntr")
            items.append({"type": "code_interpreter_call", "id": _item_id("ci"),
                          "container_id": container, "code": "print(1)",
                          "outputs": None, "status": "completed"})
        elif isinstance(tool, dict) and tool.get("type") == "file_search":
            items.append({"type": "file_search_call", "id": _item_id("fs"),
                          "queries": ["the question"], "status": "completed", "results": None})
    return items


def _annotations(tool_items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the answer's text cites, as the real API does: a file code
    interpreter wrote in its container (``container_file_citation``, a new
    ``cfile_`` id each run) and a file file search found (``file_citation``)."""
    cited: list[dict[str, Any]] = []
    for item in tool_items:
        if item["type"] == "code_interpreter_call":
            cited.append({"type": "container_file_citation", "container_id": item["container_id"],
                          "file_id": _item_id("cfile"), "filename": "out.csv",
                          "start_index": 0, "end_index": len(REPLY)})
        elif item["type"] == "file_search_call":
            cited.append({"type": "file_citation", "file_id": "file-" + secrets.token_hex(11),
                          "filename": "handbook.pdf", "index": len(REPLY)})
    return cited


def _not_found(response_id: str) -> web.Response:
    doc = {"error": {"message": f"Response with id '{response_id}' not found.",
                     "type": "invalid_request_error", "param": None, "code": None}}
    return web.Response(status=404, body=orjson.dumps(doc), content_type="application/json")


Read = Callable[[web.Request], Awaitable[dict[str, Any]]]
"""Reads (and logs) a request's body, as the stand-in does for every call."""
Stream = Callable[[web.Request, list[bytes]], Awaitable[web.StreamResponse]]
"""Streams events, counted in the stand-in's ``/_standin/streams``."""


class StandInResponses:
    """``/v1/responses*`` on the stand-in; ``read`` logs the request, ``stream`` sends events."""

    def __init__(self, read: Read, stream: Stream) -> None:
        self._read = read
        self._stream = stream
        self.stored: dict[str, StoredResponse] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/responses", self.create)
        app.router.add_get("/v1/responses/{id}", self.retrieve)
        app.router.add_delete("/v1/responses/{id}", self.delete)
        app.router.add_post("/v1/responses/{id}/cancel", self.cancel)
        app.router.add_get("/v1/responses/{id}/input_items", self.input_items)

    async def create(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if (forced := forced_status(request)) is not None:
            return forced
        tool_items = _tool_items(body)
        part = {"type": "output_text", "text": REPLY, "annotations": _annotations(tool_items)}
        item = {"type": "message", "id": _item_id("msg"), "role": "assistant",
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
            "output": [*tool_items, item],
            "usage": {"input_tokens": 5, "output_tokens": (out := output_tokens(request, 7)),
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

    async def retrieve(self, request: web.Request) -> web.StreamResponse:
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
            sse("response.in_progress", {"type": "response.in_progress", "sequence_number": 0,
                                         "response": current})]
        return await self._stream(request, events[after + 1 :])

    async def delete(self, request: web.Request) -> web.Response:
        await self._read(request)
        response_id = request.match_info["id"]
        if self.stored.pop(response_id, None) is None:
            return _not_found(response_id)
        return web.json_response({"id": response_id, "object": "response", "deleted": True})

    async def cancel(self, request: web.Request) -> web.Response:
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

    async def input_items(self, request: web.Request) -> web.Response:
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
