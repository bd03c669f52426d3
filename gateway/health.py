"""Liveness and readiness, no credential needed.

``/healthz`` answers while the process runs. ``/readyz`` answers 200 only
when the database, the quota store and every upstream are reachable and the
process is not draining (SIGTERM), so a load balancer stops sending first.

Every upstream: GATEWAY_UPSTREAM_URL and each model's own (``upstream:`` in
the bundle in force), since a request for that model goes there and nowhere
else. ``upstreams`` names each with its reachability, so an operator sees
which one failed; all are probed at once, so readyz takes one probe's time
(at most 2 s) however many there are.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import ORJSONResponse
from sqlalchemy import text

from gateway.deps import ServicesDep
from gateway.proxy.upstream import shown_url
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
    bundle = services.policy.current
    urls = services.upstream.base_urls(bundle)
    database, quota, *reachable = await asyncio.gather(
        _database_ok(services), _quota_ok(services), *map(services.upstream.ping, urls)
    )
    upstream = bool(urls) and all(reachable)
    checks = {
        "database": database,
        "quota_store": quota,
        "upstream": upstream,
        "draining": services.draining,
    }
    ready = database and quota and upstream and not services.draining
    shown: dict[str, bool] = {}
    for url, ok in zip(urls, reachable, strict=True):
        # Two URLs that differ only in what is not shown: either down shows down.
        shown[shown_url(url)] = shown.get(shown_url(url), True) and ok
    return ORJSONResponse(
        {
            "ready": ready,
            "checks": checks,
            "upstreams": shown,
            "policy_version": bundle.version,
        },
        status_code=200 if ready else 503,
    )
