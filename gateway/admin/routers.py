"""Every ``/admin/v1`` router, included in one place."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.admin import audit, customers, decisions, keys, kyc_webhook, policy, usage


def include_admin_routers(app: FastAPI) -> None:
    for module in (customers, keys, kyc_webhook, policy, decisions, audit, usage):
        app.include_router(module.router)
