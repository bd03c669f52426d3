"""Liveness and readiness, no credential needed.

``/healthz`` answers while the process runs. ``/readyz`` answers 200 only
when the database, the quota store and the upstream are reachable and the
process is not draining (SIGTERM), so a load balancer stops sending first.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import ORJSONResponse
from sqlalchemy import text

from gateway.deps import ServicesDep
from gateway.services import Services

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _database_ok(services: Services) -> bool:
    try:
        async with services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"; reported below
        return False


async def _quota_ok(services: Services) -> bool:
    ping = getattr(services.meter, "ping", None)
    if ping is None:
        return True
    try:
        return bool(await ping())
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


@router.get("/readyz", include_in_schema=False)
async def readyz(services: ServicesDep) -> ORJSONResponse:
    database, quota, upstream = await asyncio.gather(
        _database_ok(services), _quota_ok(services), services.upstream.ping()
    )
    checks = {
        "database": database,
        "quota_store": quota,
        "upstream": upstream,
        "draining": services.draining,
    }
    ready = database and quota and upstream and not services.draining
    return ORJSONResponse(
        {"ready": ready, "checks": checks, "policy_version": services.policy.current.version},
        status_code=200 if ready else 503,
    )
