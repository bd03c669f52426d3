"""The floor for this stack: a passthrough proxy with no checks at all.

Same stack as the gateway (FastAPI/Starlette app, uvicorn with uvloop and
httptools, one pooled aiohttp session upstream, bodies forwarded as bytes,
streams relayed chunk by chunk, the same ``gc.freeze()`` tuning after start-up)
so that the difference between this and the gateway is exactly the cost of
identify, locate, classify, decide, meter, record and settle.

Two shapes:

* ``--mode asgi`` (default, what ``python -m bench`` measures as "bare"): a pure
  ASGI callable in front of a FastAPI app, the way ``gateway/proxy/routes.py``
  is built; ``/v1/*`` never enters FastAPI's router.
* ``--mode fastapi``: a plain FastAPI route (``Request.body()``, ``Response`` /
  ``StreamingResponse``), what a typical FastAPI proxy looks like; slower, and
  shown for reference with ``--targets ...,bare-fastapi``.
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SKIP_REQUEST = frozenset({b"host", b"content-length", b"connection", b"keep-alive",
                           b"transfer-encoding", b"te", b"upgrade", b"proxy-connection"})
_SKIP_RESPONSE = frozenset({"content-length", "connection", "keep-alive", "transfer-encoding"})


class Upstream:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=300),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def send(self, method: str, path: str, headers: dict[str, str],
                   body: bytes) -> aiohttp.ClientResponse:
        assert self.session is not None
        return await self.session.request(method, self.base_url + path, headers=headers,
                                          data=body, allow_redirects=False)


def _request_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in raw if k not in _SKIP_REQUEST}


def _response_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in response.headers.items() if k.lower() not in _SKIP_RESPONSE]


def _is_stream(response: aiohttp.ClientResponse) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


class BareRoutes:
    """Pure ASGI: ``/v1/*`` relayed upstream, anything else to the FastAPI app."""

    def __init__(self, app: FastAPI, upstream: Upstream) -> None:
        self.app = app
        self.upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        path = scope["path"]
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        response = await self.upstream.send(scope["method"], path,
                                            _request_headers(scope["headers"]), body)
        try:
            headers = _response_headers(response)
            if _is_stream(response):
                await send({"type": "http.response.start", "status": response.status,
                            "headers": headers})
                async for data in response.content.iter_any():
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                data = await response.read()
                headers.append((b"content-length", str(len(data)).encode()))
                await send({"type": "http.response.start", "status": response.status,
                            "headers": headers})
                await send({"type": "http.response.body", "body": data, "more_body": False})
        finally:
            response.close()


def create_app(upstream_url: str, mode: str, gc_tuning: bool) -> Any:
    upstream = Upstream(upstream_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await upstream.start()
        if gc_tuning:
            # The same start-up tuning as gateway/app.py, so both are measured alike.
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
        yield
        await upstream.stop()

    api = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if mode == "asgi":
        return BareRoutes(api, upstream)

    @api.api_route("/v1/{rest:path}", methods=["GET", "POST"])
    async def relay(request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        if request.url.query:
            path += "?" + request.url.query
        response = await upstream.send(request.method, path,
                                       _request_headers(request.scope["headers"]), body)
        headers = {k.decode(): v.decode() for k, v in _response_headers(response)}
        if _is_stream(response):
            async def relay_stream() -> AsyncIterator[bytes]:
                try:
                    async for data in response.content.iter_any():
                        yield data
                finally:
                    response.close()

            return StreamingResponse(relay_stream(), status_code=response.status, headers=headers)
        data = await response.read()
        response.close()
        return Response(data, status_code=response.status, headers=headers)

    return api


def main() -> None:
    parser = argparse.ArgumentParser(description="Bare passthrough proxy (the stack's floor)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9300)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9200")
    parser.add_argument("--mode", choices=("asgi", "fastapi"), default="asgi")
    parser.add_argument("--no-gc-tuning", action="store_true")
    args = parser.parse_args()
    app = create_app(args.upstream, args.mode, not args.no_gc_tuning)
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http="httptools", ws="none",
                access_log=False, log_level="warning", proxy_headers=False, workers=1)


if __name__ == "__main__":
    main()
