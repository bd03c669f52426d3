"""A Message Batches create body's requests, checked before any is decided
(``gateway.proxy.batch_decide``): a JSON object whose ``requests`` is a
non-empty array of at most ``MAX_BATCH_REQUESTS`` entries, each a unique,
well-formed ``custom_id`` with an object of ``params``; anything else is a 400
naming what is wrong.

Separate from the decisions: this is the batch's own envelope, read once,
and each ``params`` it yields is then parsed and decided exactly as a
``/v1/messages`` body.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.proxy.errors import ProxyError

MAX_BATCH_REQUESTS = 10_000
"""Inner requests per batch (on top of the body-size limit): each is decided
and recorded before the batch goes upstream, so the work of one create is bounded."""
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Anthropic's own rule for ``custom_id``; it is also what the records name."""


def requests_of(raw: bytes) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The create body, and its requests as (custom_id, params); a 400 for anything else."""
    try:
        doc = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise ProxyError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ProxyError(400, "request body must be a JSON object")
    items = doc.get("requests")
    if not isinstance(items, list) or not items:
        raise ProxyError(400, "'requests' must be a non-empty array", param="requests")
    if len(items) > MAX_BATCH_REQUESTS:
        raise ProxyError(
            400,
            f"a batch may hold at most {MAX_BATCH_REQUESTS} requests through this gateway; "
            f"this one has {len(items)}",
            param="requests",
        )
    found: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
            raise ProxyError(
                400, f"requests[{index}].custom_id must be 1-64 letters, digits, '_' or '-'"
            )
        if custom_id in seen:
            raise ProxyError(400, f"custom_id '{custom_id}' is used by more than one request")
        if not isinstance(params, dict):
            raise ProxyError(400, f"requests[{index}].params must be an object")
        seen.add(custom_id)
        found.append((custom_id, params))
    return doc, found
