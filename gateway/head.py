"""HEAD wherever GET is answered (RFC 9110 section 9.3.2), for the FastAPI app.

FastAPI routes declared with ``get`` answer HEAD with 405, which load
balancers and uptime probes that check with HEAD read as down. Declaring HEAD
on every route would also put a HEAD operation per route into the admin
OpenAPI document; instead the request runs as the GET it mirrors and the
content is dropped: the GET's status and headers, Content-Length included, no
body. The GET's work is done in full: HEAD is for probes, and a probe wants
to know that the GET works. A route whose content is expensive to produce
asks ``is_head`` and skips it (the decision export: its headers, never a
read of the whole log sent to nowhere). The proxied ``/v1/*`` routes answer
HEAD themselves (``gateway.proxy.routes``).
"""

from __future__ import annotations

from typing import Any

from gateway.proxy.asgi_io import Message, Receive, Scope, Send

HEAD_SCOPE_KEY = "gateway.head"
"""Set in the scope of a HEAD request run as a GET."""


def is_head(scope: Scope) -> bool:
    """Is this GET a HEAD, whose content is dropped (``head_as_get``)?"""
    return scope.get(HEAD_SCOPE_KEY, False) is True


def as_get(scope: Scope, send: Send) -> tuple[Scope, Send]:
    """The HEAD request ``scope`` as a GET, and a ``send`` that drops its content."""

    async def headers_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return {**scope, "method": "GET", HEAD_SCOPE_KEY: True}, headers_only


async def head_as_get(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the HEAD request ``scope`` through ``app`` as a GET, sending no content."""
    get_scope, headers_only = as_get(scope, send)
    await app(get_scope, receive, headers_only)
