"""Admin-API input that no route may see: NUL characters and non-finite numbers.

Why here, once, in front of every ``/admin/`` route, and not per field:

- PostgreSQL cannot store or compare text holding NUL (U+0000): asyncpg
  raises "invalid byte sequence for encoding UTF8: 0x00" for a name, a path
  id or a filter value, which became a 500. Every route that takes text
  would need the check (and every future one), so it is made where a request
  enters. It applies on SQLite too, so both stores behave alike, and no
  identifier, name or reason legitimately holds NUL.
- JSON nested deeper than Python's parser recurses (an ownership tree
  thousands of levels deep) raised RecursionError: a 500. It is a 422.
- JSON has no ``NaN`` or ``Infinity`` (RFC 8259), but Python's parser reads
  them, and ``1e999`` as infinity. Validation then failed on them and the 422
  that quoted the value could not itself be rendered as JSON: a 500.

Refusals are 422 in FastAPI's validation shape (``{"detail": [{"loc", "msg",
"type"}]}``), ``loc`` naming where: ``["path"]``, ``["query", name]`` or the
JSON path into the body. A body that is not JSON is passed on untouched for
the route to judge (and the KYC webhook still checks its signature over the
exact bytes: the body is replayed as received).

Bodies are read only up to ``max_body_bytes`` (``GATEWAY_MAX_BODY_BYTES``,
the proxied API's limit too): a larger one is 413 ``{"detail": ...}``, from
its ``Content-Length`` before a byte is read, or once that many bytes have
arrived. Buffering it whole came before any credential or signature was
checked, so an anonymous client could make the gateway hold any amount of
memory (a 300 MB POST to ``/admin/v1/kyc/webhook``: +180 MB). A body must
also arrive whole within ``body_read_timeout_seconds``
(``GATEWAY_BODY_READ_TIMEOUT_SECONDS``, as on the proxied API): 408 and the
connection closed, or a client dripping a byte at a time held its connection
and buffer as long as it liked. (``asyncio.timeout`` per read here: the
proxied API's cheaper shared timer, ``gateway.proxy.body_deadline``, is for
its hot path.)

``json_safe`` is the other half: the validation-error renderer uses it so a
non-finite float that reaches a 422 some other way is shown as text, never a
500.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/admin/"
NUL = "\x00"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _NonFinite:
    """A JSON number Python would read as NaN or an infinity, kept as its text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _number(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _problems(value: Any, loc: list[str | int]) -> list[dict[str, Any]]:
    """Every NUL-bearing string (key or value) and non-finite number in ``value``."""
    if isinstance(value, _NonFinite):
        return [_error(loc, f"{value.text} is not a JSON number (RFC 8259): use a finite number")]
    if isinstance(value, str):
        return [_error(loc, "must not contain NUL (U+0000) characters")] if NUL in value else []
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                found.append(_error(loc, "keys must not contain NUL (U+0000) characters"))
            found += _problems(item, [*loc, key.replace(NUL, "\\u0000")])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _problems(item, [*loc, index])
    return found


def _error(loc: list[str | int], msg: str) -> dict[str, Any]:
    return {"type": "value_error", "loc": loc, "msg": msg}


def body_problems(body: bytes) -> list[dict[str, Any]]:
    """What is wrong with a JSON body; [] when nothing is, or when it is not JSON."""
    if not body:
        return []
    try:
        parsed = json.loads(body, parse_constant=_NonFinite, parse_float=_number)
        return _problems(parsed, ["body"])
    except ValueError:  # JSONDecodeError and UnicodeDecodeError: the route's to report
        return []
    except RecursionError:
        # Nested deeper than Python's parser recurses (about 1,000 levels): no
        # record is (an ownership chain is at most 8 levels), and letting it
        # through was a 500 here, or in the route's own parse.
        return [_error(["body"], "JSON nested too deep to read (no record nests this deep)")]


def url_problems(scope: Scope) -> list[dict[str, Any]]:
    message = "must not contain NUL (U+0000) characters"
    if NUL in scope["path"]:  # the path arrives percent-decoded: %00 is a NUL here
        return [_error(["path"], message)]
    raw: bytes = scope.get("query_string", b"")
    if b"%00" not in raw and b"\x00" not in raw:
        return []
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, errors="replace")
    named = [name for name, value in pairs if NUL in name or NUL in value]
    return [_error(["query", name.replace(NUL, "\\u0000")], message) for name in named] or [
        _error(["query"], message)
    ]


DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
"""``Settings.max_body_bytes``'s default, for apps wired without settings."""
DEFAULT_BODY_READ_TIMEOUT_SECONDS = 30.0
"""``Settings.body_read_timeout_seconds``'s default, likewise."""


class BodyTooLarge(Exception):
    pass


class RefuseUnstorableInput:
    """Pure ASGI (no BaseHTTPMiddleware: it would buffer streamed exports)."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        body_read_timeout_seconds: float = DEFAULT_BODY_READ_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_read_timeout_seconds = body_read_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        problems = url_problems(scope)
        if problems:
            await _refuse(send, problems)
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        try:
            if _declared_length(scope) > limit:
                raise BodyTooLarge
            async with asyncio.timeout(self.body_read_timeout_seconds):
                body, replay = await _buffered(receive, limit)
        except BodyTooLarge:
            await _send_json(send, 413, {"detail": f"request body too large (at most {limit} "
                                                   "bytes: GATEWAY_MAX_BODY_BYTES)"})  # fmt: skip
            return
        except TimeoutError:
            seconds = self.body_read_timeout_seconds
            await _send_json(send, 408, {"detail": f"request body not complete within {seconds:g} "
                                                   "s (GATEWAY_BODY_READ_TIMEOUT_SECONDS)"},
                             close=True)  # fmt: skip
            return
        problems = body_problems(body)
        if problems:
            await _refuse(send, problems)
            return
        await self.app(scope, replay, send)


def _declared_length(scope: Scope) -> int:
    """The ``Content-Length`` the client declared, 0 when none (or unreadable:
    the server refuses those itself)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


async def _buffered(receive: Receive, limit: int) -> tuple[bytes, Receive]:
    """The whole request body, and a ``receive`` that hands it on as received;
    BodyTooLarge once more than ``limit`` bytes have arrived."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # disconnected: let the app see it
            first: Message | None = message
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            first = None
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first or {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _refuse(send: Send, problems: list[dict[str, Any]]) -> None:
    await _send_json(send, 422, {"detail": problems})


async def _send_json(
    send: Send, status: int, content: dict[str, Any], close: bool = False
) -> None:
    payload = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode())]  # fmt: skip
    if close:  # RFC 9110 15.5.9: the rest of the body is not waited for
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its text (``"nan"``, ``"inf"``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
