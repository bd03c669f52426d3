"""Small ASGI helpers for the proxy routes: read a bounded body, send a response.

The proxy routes are plain ASGI (no BaseHTTPMiddleware, no response classes)
so that a stream goes out chunk by chunk as it arrives and nothing on the hot
path builds objects it does not need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.proxy.body_deadline import BodyDeadlines, Task
from gateway.proxy.errors import ProxyError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(Exception):
    """The client disconnected before the request body was complete."""


async def read_body(
    scope: Scope, receive: Receive, limit: int, deadlines: BodyDeadlines, task: Task
) -> bytes:
    """The whole request body, refusing (413) as soon as it passes ``limit``,
    and (408) when it is not whole by the deadline ``deadlines`` keeps for
    ``task`` (the running one)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise ProxyError(400, "invalid Content-Length header") from None
            if declared > limit:
                raise ProxyError(413, f"request body exceeds the {limit}-byte limit")
            break
    chunks: list[bytes] = []
    size = 0
    deadlines.watch(task)
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise ProxyError(413, f"request body exceeds the {limit}-byte limit")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        if not deadlines.expired(task):
            raise
        # RFC 9110 15.5.9: a 408 says the server closes rather than go on
        # waiting, and the close is what frees the connection the client holds.
        raise ProxyError(
            408,
            f"the request body did not arrive whole within {deadlines.seconds:g} s",
            headers={"connection": "close"},
        ) from None
    finally:
        deadlines.unwatch(task)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (names are lower case in ASGI)."""
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


async def send_response(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, head: bool = False
) -> None:
    """Send a whole response; for a HEAD request (``head``) its headers only,
    Content-Length included (RFC 9110 section 9.3.2: the GET's headers)."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})


def joined_header(scope: Scope, name: bytes) -> str | None:
    """Every line of a list-valued request header, joined with commas.

    RFC 9110 section 5.3: several field lines of one name are one
    comma-separated list. Reading only the first would let a client whose
    proxy adds its own ``X-Forwarded-For`` line (instead of appending to the
    client's) pick its own address, and with it its country.
    """
    values = [value.decode("latin-1") for key, value in scope["headers"] if key == name]
    return ", ".join(values) if values else None


JSON_CONTENT_TYPE = (b"content-type", b"application/json")
