"""Liveness and readiness, no credential needed.

``/healthz`` answers while the process runs. ``/readyz`` answers 200 only
when the database, the quota store and the default upstream
(GATEWAY_UPSTREAM_URL) are reachable and the process is not draining
(SIGTERM), so a load balancer stops sending first.

Each model's own upstream (``upstream:`` in the bundle in force) is probed
too and named under ``upstreams`` with its reachability, and
``checks.model_upstreams`` says whether all of them answered; but one of them
being down does not make the replica unready. Every replica shares it, so
failing readiness would take all of them out of the load balancer and every
other model down with that one; its own requests get a 502 (recorded), and
this answer and ``gateway_upstream_errors_total`` show where. Without a
default upstream, the models' upstreams are what readiness needs. All are
probed at once, so readyz takes one probe's time (at most 2 s).

Without Redis, ``checks.quota_counters_shared`` is false and
``quota_unshared_peers`` counts the other gateway processes on this database
(``gateway.quota.peers``): information, not readiness.
"""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import text

from gateway.deps import ServicesDep
from gateway.proxy.upstream import shown_url
from gateway.quota.peers import PEERS_KEY, UnsharedPeerWatch
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
async def readyz(services: ServicesDep) -> Response:
    bundle = services.policy.current
    urls = services.upstream.base_urls(bundle)
    database, quota, *reachable = await asyncio.gather(
        _database_ok(services), _quota_ok(services), *map(services.upstream.ping, urls)
    )
    default = services.upstream.base_url
    if default is not None:
        upstream = reachable[0]  # base_urls() puts the default first
        models_ok = all(reachable[1:])
    else:
        upstream = models_ok = bool(urls) and all(reachable)
    checks = {
        "database": database,
        "quota_store": quota,
        "upstream": upstream,
        "model_upstreams": models_ok,
        "draining": services.draining,
    }
    # Decisions are recorded before they are forwarded: a replica whose
    # records do not commit refuses everything, whatever SELECT 1 says.
    failing = getattr(services.audit, "commit_failing", None)
    audit = not (failing is not None and failing())
    checks["audit"] = audit
    # Information, not readiness: other gateways on this database with
    # in-process quota counters (gateway.quota.peers). Failing readiness
    # for it would take every replica out at once.
    watch: UnsharedPeerWatch | None = services.extras.get(PEERS_KEY)
    unshared_peers = 0 if watch is None else len(watch.peers)
    checks["quota_counters_shared"] = unshared_peers == 0
    ready = database and audit and quota and upstream and not services.draining
    shown: dict[str, bool] = {}
    for url, ok in zip(urls, reachable, strict=True):
        # Two URLs that differ only in what is not shown: either down shows down.
        shown[shown_url(url)] = shown.get(shown_url(url), True) and ok
    # A plain Response: FastAPI deprecated ORJSONResponse and warned on
    # every worker's first probe.
    body = {"ready": ready, "checks": checks, "upstreams": shown,
            "policy_version": bundle.version, "quota_unshared_peers": unshared_peers}
    return Response(
        orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
    )
