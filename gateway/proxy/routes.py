"""The proxied API's routes, as a pure ASGI app in front of the FastAPI app.

Like a Starlette middleware it holds ``self.app`` and passes through what it
does not handle (admin API, health, metrics); ``/v1/*`` requests (and
misspellings of them: ``gateway.proxy.paths``) go straight
to the pipeline without FastAPI's routing and dependency machinery, which a
reverse proxy does not need and which would cost every request.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.head import head_as_get
from gateway.policy.facts import ApiShape
from gateway.proxy.asgi_io import JSON_CONTENT_TYPE, Receive, Scope, Send, header, send_response
from gateway.proxy.batch_routes import batch_call
from gateway.proxy.errors import ProxyError, api_for_path
from gateway.proxy.header_limits import STATUS as HEADERS_TOO_LARGE
from gateway.proxy.header_limits import oversized_headers
from gateway.proxy.paths import MODELS_ROUTE, POST_ROUTES, folded, in_api_space, meant_route
from gateway.proxy.pipeline import Pipeline
from gateway.proxy.stored_routes import stored_call
from gateway.services import Services


class ProxyRoutes:
    """ASGI: ``/v1/*`` to the pipeline, everything else to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._pipeline: Pipeline | None = None

    def _services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def pipeline(self) -> Pipeline:
        services = self._services()
        if self._pipeline is None or self._pipeline.services is not services:
            self._pipeline = Pipeline(services)
        return self._pipeline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not in_api_space(scope["path"]):
            # /v1/* checks its headers as it reads X-Forwarded-For (Pipeline._locate).
            problem = oversized_headers(scope["headers"])
            if problem is None and scope["method"] == "HEAD":
                await head_as_get(self.app, scope, receive, send)
            elif problem is None:
                await self.app(scope, receive, send)
            else:
                body = orjson.dumps({"detail": problem})
                await send_response(send, HEADERS_TOO_LARGE, [JSON_CONTENT_TYPE], body)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        api: ApiShape
        if path in POST_ROUTES:
            api = api_for_path(path)
            if method == "POST":
                await self.pipeline().handle(scope, receive, send, api)
                return
            refusal = _not_allowed(method, path, "POST")
        elif path == MODELS_ROUTE:
            # Listing is itself an authorization decision: it is recorded like one.
            api = "anthropic" if header(scope, b"anthropic-version") else "openai"
            # RFC 9110 9.3.2: HEAD wherever GET, the same decision without content.
            if method == "GET" or method == "HEAD":
                await self.pipeline().list_models(scope, send, api)
                return
            refusal = _not_allowed(method, path, "GET, HEAD")
        elif (call := stored_call(path, method)) is not None:
            # Only after the exact lookups missed: no other route pays for it.
            if call.operation is not None:
                await self.pipeline().handle_stored(scope, receive, send, call)
                return
            api = "openai"
            refusal = _not_allowed(method, path, call.allowed_methods)
        elif (batch := batch_call(path, method)) is not None:
            # Message Batches: also only after the exact lookups missed.
            if batch.operation is not None:
                await self.pipeline().handle_batch(scope, receive, send, batch)
                return
            api = "anthropic"
            refusal = _not_allowed(method, path, batch.allowed_methods)
        else:
            # A misspelt route is refused, never served (gateway.proxy.paths),
            # but in the shape of the API it was meant for, naming the route.
            meant = meant_route(path)
            api = api_for_path(folded(path))
            if api == "openai" and header(scope, b"anthropic-version"):
                # The Anthropic SDK names its version on every request: its
                # calls to routes not served here (/v1/models/{id}, /v1/files)
                # are answered in its shape, as /v1/models is.
                api = "anthropic"
            hint = f" (did you mean {meant}? paths are case-sensitive)" if meant else ""
            refusal = ProxyError(404, f"no such route: {path}{hint}")
        # Recorded like any refusal, so that this answer too carries its
        # decision id and policy version, and the audit log sees the probe.
        await self.pipeline().refuse_route(scope, send, api, refusal)


def _not_allowed(method: str, path: str, allowed: str) -> ProxyError:
    return ProxyError(405, f"{method} is not allowed on {path}", headers={"allow": allowed})
