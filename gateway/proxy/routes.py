"""The proxied API's routes, as a pure ASGI app in front of the FastAPI app.

Like a Starlette middleware it holds ``self.app`` and passes through what it
does not handle (admin API, health, metrics); ``/v1/*`` requests go straight
to the pipeline without FastAPI's routing and dependency machinery, which a
reverse proxy does not need and which would cost every request.
"""

from __future__ import annotations

from typing import Any

from gateway.policy.facts import ApiShape
from gateway.proxy.asgi_io import JSON_CONTENT_TYPE, Receive, Scope, Send, header, send_response
from gateway.proxy.errors import ProxyError, api_for_path, render_error
from gateway.proxy.pipeline import Pipeline
from gateway.services import Services

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
        # Listing is itself an authorization decision: it is recorded like one.
        api: ApiShape = "anthropic" if header(scope, b"anthropic-version") else "openai"
        await self.pipeline().list_models(scope, send, api)


async def _plain_error(send: Send, api: Any, error: ProxyError) -> None:
    await send_response(send, error.status, [JSON_CONTENT_TYPE], render_error(api, error))
