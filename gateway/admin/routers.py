"""Every ``/admin/v1`` router, included in one place."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.admin.actions import router as actions_router
from gateway.admin.audit import router as audit_router
from gateway.admin.customers import router as customers_router
from gateway.admin.decisions import router as decisions_router
from gateway.admin.holds import router as holds_router
from gateway.admin.keys import router as keys_router
from gateway.admin.kyc_webhook import router as kyc_webhook_router
from gateway.admin.policy import router as policy_router
from gateway.admin.usage import router as usage_router

ADMIN_ROUTERS = (
    customers_router,
    keys_router,
    kyc_webhook_router,
    policy_router,
    decisions_router,
    audit_router,
    actions_router,
    holds_router,
    usage_router,
)


def include_admin_routers(app: FastAPI) -> None:
    for router in ADMIN_ROUTERS:
        app.include_router(router)
