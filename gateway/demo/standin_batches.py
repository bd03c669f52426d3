"""The stand-in's Message Batches API (Anthropic), in memory.

Processing is instant: a batch is ``ended`` as soon as it is created, and its
results are one ``succeeded`` message per request, with usage, as JSONL.
Enough for the gateway's tests to drive create, poll, results, list, cancel
and delete through the official SDK.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gateway.demo.standin_answers import code_execution_blocks

BATCHES = "/v1/messages/batches"
_OUTPUT_TOKENS = 7
_INPUT_TOKENS = 12


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _not_found(batch_id: str) -> web.Response:
    doc = {"type": "error", "error": {"type": "not_found_error",
                                      "message": f"batch {batch_id} not found"}}  # fmt: skip
    return web.Response(status=404, body=orjson.dumps(doc), content_type="application/json")


class StandInBatches:
    """``/v1/messages/batches*`` on the stand-in; ``read`` logs the request."""

    def __init__(self, read: Any) -> None:
        self._read = read
        self._seq = itertools.count(1)
        self.batches: dict[str, dict[str, Any]] = {}
        self.requests: dict[str, list[dict[str, Any]]] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(BATCHES, self.create)
        app.router.add_get(BATCHES, self.list)
        app.router.add_get(BATCHES + "/{id}", self.retrieve)
        app.router.add_delete(BATCHES + "/{id}", self.delete)
        app.router.add_post(BATCHES + "/{id}/cancel", self.cancel)
        app.router.add_get(BATCHES + "/{id}/results", self.results)

    def _url(self, request: web.Request, batch_id: str) -> str:
        return f"{request.scheme}://{request.host}{BATCHES}/{batch_id}/results"

    async def create(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        inner = body.get("requests") or []
        batch_id = f"msgbatch_standin_{next(self._seq):06d}"
        now = _now()
        batch = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended",
            "request_counts": {
                "processing": 0,
                "succeeded": len(inner),
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "ended_at": now,
            "created_at": now,
            "expires_at": now,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": self._url(request, batch_id),
        }
        self.batches[batch_id] = batch
        self.requests[batch_id] = inner
        return web.json_response(batch)

    async def list(self, request: web.Request) -> web.Response:
        await self._read(request)
        newest_first = list(reversed(self.batches.values()))
        ids = [batch["id"] for batch in newest_first]
        limit = int(request.query.get("limit", "20"))
        after, before = request.query.get("after_id"), request.query.get("before_id")
        if before in ids:  # the page immediately before (newer than) the cursor
            end = ids.index(before)
            data, has_more = newest_first[max(end - limit, 0) : end], end > limit
        else:
            start = ids.index(after) + 1 if after in ids else 0
            data = newest_first[start : start + limit]
            has_more = start + limit < len(ids)
        return web.json_response({
            "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        })  # fmt: skip

    async def retrieve(self, request: web.Request) -> web.Response:
        await self._read(request)
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _not_found(request.match_info["id"])
        return web.json_response(batch)

    async def cancel(self, request: web.Request) -> web.Response:
        await self._read(request)
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _not_found(request.match_info["id"])
        batch["cancel_initiated_at"] = batch["cancel_initiated_at"] or _now()
        return web.json_response(batch)

    async def delete(self, request: web.Request) -> web.Response:
        await self._read(request)
        batch_id = request.match_info["id"]
        if self.batches.pop(batch_id, None) is None:
            return _not_found(batch_id)
        self.requests.pop(batch_id, None)
        return web.json_response({"id": batch_id, "type": "message_batch_deleted"})

    async def results(self, request: web.Request) -> web.Response:
        await self._read(request)
        batch_id = request.match_info["id"]
        inner = self.requests.get(batch_id)
        if inner is None:
            return _not_found(batch_id)
        lines = []
        for i, item in enumerate(inner):
            params = item.get("params") or {}
            message = {
                "id": f"msg_standin_{batch_id}_{i}",
                "type": "message",
                "role": "assistant",
                "model": params.get("model", "unknown"),
                "content": [{"type": "text", "text": "Hello from the stand-in batch."},
                            *code_execution_blocks(params)],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": _INPUT_TOKENS, "output_tokens": _OUTPUT_TOKENS},
            }
            lines.append(orjson.dumps({
                "custom_id": item.get("custom_id"),
                "result": {"type": "succeeded", "message": message},
            }))  # fmt: skip
        return web.Response(
            body=b"\n".join(lines) + b"\n", content_type="application/binary"
        )
