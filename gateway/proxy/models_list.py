"""``GET /v1/models``: only the models this caller may use now, in its API shape."""

from __future__ import annotations

import time
from datetime import datetime

import orjson

from gateway.identity.principal import Principal
from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import effective_tier, quota_plan
from gateway.policy.facts import ApiShape
from gateway.quota.headers import anthropic_headers
from gateway.stages import Admission, QuotaMeter

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
