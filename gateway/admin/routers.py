"""Every ``/admin/v1`` router, included in one place, what the admin API
answers when its database cannot be reached, and the input it refuses before
any route sees it (``gateway.admin.inputs``)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.admin.actions import router as actions_router
from gateway.admin.audit import router as audit_router
from gateway.admin.customers import router as customers_router
from gateway.admin.decisions import router as decisions_router
from gateway.admin.farms import router as farms_router
from gateway.admin.holds import router as holds_router
from gateway.admin.inputs import (
    DEFAULT_BODY_READ_TIMEOUT_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    RefuseUnstorableInput,
    json_safe,
)
from gateway.admin.keys import router as keys_router
from gateway.admin.kyc_webhook import router as kyc_webhook_router
from gateway.admin.policy import router as policy_router
from gateway.admin.policy_explain import router as policy_explain_router
from gateway.admin.policy_reports import router as policy_reports_router
from gateway.admin.usage import router as usage_router

ADMIN_ROUTERS = (
    customers_router,
    keys_router,
    kyc_webhook_router,
    policy_router,
    policy_explain_router,
    policy_reports_router,
    decisions_router,
    audit_router,
    actions_router,
    holds_router,
    usage_router,
    farms_router,
)


log = logging.getLogger("gateway.admin")

# Connection-level failures only: an integrity error or a bad query is a bug or
# a conflict, and must not be reported as an outage. asyncpg raises its
# connect errors (refused, unreachable, timed out) as plain OSErrors.
STORE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout, OSError)


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 in the admin API's shape, never a 500 or a dropped connection."""
    log.error("admin %s %s: database unavailable (%s: %s)", request.method, request.url.path,
              type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")  # fmt: skip
    return JSONResponse(
        {"detail": f"the gateway's database cannot be reached right now "
                   f"({type(exc).__name__}); retry later"},
        status_code=503, headers={"retry-after": "1"},
    )  # fmt: skip


def answer_store_unavailable(app: FastAPI) -> None:
    for exc_type in STORE_UNAVAILABLE:
        app.add_exception_handler(exc_type, store_unavailable)


async def validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, except that a non-finite number quoted as the bad input is
    shown as text: the default renderer raised on it, turning the 422 into a 500."""
    return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()))}, status_code=422)


def guard_admin_input(
    app: FastAPI,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_read_timeout_seconds: float = DEFAULT_BODY_READ_TIMEOUT_SECONDS,
) -> None:
    app.add_middleware(RefuseUnstorableInput, max_body_bytes=max_body_bytes,
                       body_read_timeout_seconds=body_read_timeout_seconds)  # fmt: skip
    app.add_exception_handler(RequestValidationError, validation_failed)  # type: ignore[arg-type]


def include_admin_routers(
    app: FastAPI,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_read_timeout_seconds: float = DEFAULT_BODY_READ_TIMEOUT_SECONDS,
) -> None:
    for router in ADMIN_ROUTERS:
        app.include_router(router)
    answer_store_unavailable(app)
    guard_admin_input(app, max_body_bytes, body_read_timeout_seconds)
