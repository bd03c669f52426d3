"""``GET /v1/models``: only the models this caller may use now, in its API shape."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

import orjson

from gateway.identity.principal import Principal
from gateway.ops import hooks  # ops: metrics + access log
from gateway.policy.account_tier import account_refusal, effective_tier
from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import visible_models
from gateway.policy.facts import ApiShape
from gateway.policy.quota_plans import quota_plan
from gateway.proxy.asgi_io import JSON_CONTENT_TYPE, Scope, Send
from gateway.proxy.asgi_io import send_response as send_raw
from gateway.proxy.errors import ProxyError, unavailable
from gateway.proxy.exchange import Exchange
from gateway.proxy.quota_refusal import quota_refusal
from gateway.quota.headers import anthropic_headers
from gateway.stages import (
    Admission,
    AuditUnavailable,
    QuotaMeter,
    QuotaStoreUnavailable,
    StageUnavailable,
)

if TYPE_CHECKING:
    from gateway.proxy.pipeline import Pipeline

_NO_CAPABILITIES: frozenset[str] = frozenset()


async def admit_listing(
    meter: QuotaMeter, principal: Principal, bundle: CompiledBundle, now: datetime
) -> Admission:
    """Count a listing as one request of the effective tier's default bucket.

    It carries no capability and generates nothing, so it takes no tokens and
    no stream slot. Uncounted, a key could call it without limit, each call
    a decision record and a policy evaluation per model (raises
    QuotaStoreUnavailable as ``Meter.admit`` does)."""
    tier, _ = effective_tier(principal, bundle, now)
    plan, _closed = quota_plan(bundle, tier, _NO_CAPABILITIES)
    return await meter.admit(principal.customer_id, plan, False, 0, now)


def admission_headers(api: ApiShape, admission: Admission) -> list[tuple[bytes, bytes]]:
    """The quota headers of an allowed answer (SPEC 2), in the API's own names too."""
    headers = [(k.encode(), v.encode()) for k, v in admission.headers.items()]
    if api == "anthropic" and admission.resets_ms:
        headers.extend(anthropic_headers(admission.headers, admission.resets_ms, admission.at_ms))
    return headers


def render_models(names: list[str], anthropic: bool) -> bytes:
    if anthropic:
        return orjson.dumps(
            {
                "data": [
                    {
                        "type": "model",
                        "id": name,
                        "display_name": name,
                        "created_at": "1970-01-01T00:00:00Z",
                    }
                    for name in names
                ],
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        )
    created = int(time.time())
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "gateway"}
                for name in names
            ],
        }
    )


async def answer_models(pipeline: Pipeline, ex: Exchange, scope: Scope, send: Send) -> None:
    """Decide, record and answer a listing: a suspended or sanctioned account is
    refused, not answered an empty list recorded as an allow."""
    services = pipeline.services
    bundle = ex.bundle
    try:
        ex.origin = pipeline._locate(ex, scope)
        ex.principal = await pipeline._identify(ex, scope)
    except ProxyError as refusal:
        await pipeline._refuse(ex, send, refusal)
        return
    except StageUnavailable as exc:
        await pipeline._refuse(ex, send, unavailable(exc))
        return
    refused = account_refusal(ex.principal)
    if refused is not None:
        # A suspended (or sanctioned) account is refused here too, not
        # answered an empty list recorded as an allow.
        ex.refuse(*refused)
        await pipeline._refuse(ex, send, ProxyError(403, refused[1], code=refused[0]))
        return
    now = services.clock()
    try:
        # A request like any other: one in the request windows of the
        # effective tier's default bucket, no tokens (docs/quotas.md).
        ex.admission = await admit_listing(services.meter, ex.principal, bundle, now)
    except QuotaStoreUnavailable as exc:
        ex.refuse("quota-store-unavailable", "the quota store is unreachable")
        await pipeline._refuse(ex, send, unavailable(exc))
        return
    if not ex.admission.allowed:
        await pipeline._refuse(ex, send, quota_refusal(ex, ex.admission))
        return
    names = visible_models(ex.principal, bundle, now, ex.origin, ex.endpoint)
    ex.refuse("models-list", f"listed {len(names)} models: {', '.join(names)}")
    try:
        await pipeline._record(ex, 200)
    except AuditUnavailable as exc:
        await pipeline._send_error(ex, send, unavailable(exc))
        return
    headers = [
        JSON_CONTENT_TYPE,
        (b"x-gateway-decision-id", ex.id.encode()),
        (b"x-gateway-policy-version", bundle.version.encode()),
        *admission_headers(ex.api, ex.admission),
    ]
    await send_raw(send, 200, headers, render_models(names, ex.api == "anthropic"), ex.head)
    hooks.finished(ex, 200, None, None)  # ops hook
