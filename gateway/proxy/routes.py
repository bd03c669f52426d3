"""The proxied API's routes, as a pure ASGI app in front of the FastAPI app.

Like a Starlette middleware it holds ``self.app`` and passes through what it
does not handle (admin API, health, metrics); ``/v1/*`` requests go straight
to the pipeline without FastAPI's routing and dependency machinery, which a
reverse proxy does not need and which would cost every request.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.policy.engine import visible_models
from gateway.proxy.asgi_io import JSON_CONTENT_TYPE, Receive, Scope, Send, header, send_response
from gateway.proxy.errors import ProxyError, api_for_path, render_error
from gateway.proxy.pipeline import Pipeline, _bearer
from gateway.services import Services
from gateway.stages import AuthenticationFailed, StageUnavailable

POST_ROUTES = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/messages",
        "/v1/messages/count_tokens",
    }
)
MODELS_ROUTE = "/v1/models"


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
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        api = api_for_path(path)
        method: str = scope["method"]
        if path in POST_ROUTES:
            if method != "POST":
                await _plain_error(send, api, ProxyError(405, f"{method} is not allowed on {path}"))
                return
            await self.pipeline().handle(scope, receive, send, api)
        elif path == MODELS_ROUTE:
            if method != "GET":
                await _plain_error(send, api, ProxyError(405, f"{method} is not allowed on {path}"))
                return
            await self._list_models(scope, send)
        else:
            await _plain_error(send, api, ProxyError(404, f"no such route: {path}"))

    async def _list_models(self, scope: Scope, send: Send) -> None:
        """Only the models this caller may use now, in the caller's API shape."""
        services = self._services()
        anthropic = header(scope, b"anthropic-version") is not None
        api = "anthropic" if anthropic else "openai"
        peer = scope["client"][0] if scope.get("client") else None
        origin = services.locator.locate(peer, header(scope, b"x-forwarded-for"))
        try:
            principal = await services.identifier.identify(
                _bearer(scope), header(scope, b"x-api-key")
            )
        except AuthenticationFailed as exc:
            await _plain_error(send, api, ProxyError(401, exc.message, code="invalid_api_key"))
            return
        except StageUnavailable as exc:
            await _plain_error(send, api, ProxyError(503, f"{exc.component} store unavailable"))
            return
        bundle = services.policy.current
        names = visible_models(principal, bundle, services.clock(), origin, MODELS_ROUTE)
        created = int(time.time())
        if anthropic:
            data: list[dict[str, object]] = [
                {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}
                for n in names
            ]
            doc: dict[str, object] = {
                "data": data,
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        else:
            data = [
                {"id": n, "object": "model", "created": created, "owned_by": "gateway"}
                for n in names
            ]
            doc = {"object": "list", "data": data}
        headers = [JSON_CONTENT_TYPE, (b"x-gateway-policy-version", bundle.version.encode())]
        await send_response(send, 200, headers, orjson.dumps(doc))


async def _plain_error(send: Send, api: Any, error: ProxyError) -> None:
    await send_response(send, error.status, [JSON_CONTENT_TYPE], render_error(api, error))
