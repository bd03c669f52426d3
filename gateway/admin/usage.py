"""``GET /admin/v1/customers/{id}/usage``: current quota use per bucket.

Roles admin, compliance, auditor. Shows every bucket of the customer's
*effective* tier under the policy in force now (the default bucket and each
capability's), with used / remaining / reset, read from the same store the
replicas meter against. Reading purges expired entries but consumes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, HTTPException

from gateway.admin.auth import AdminActor, require_roles
from gateway.deps import ServicesDep, SessionDep
from gateway.identity.screening_summary import list_in_force
from gateway.identity.store import load_customer
from gateway.policy.account_tier import effective_tier
from gateway.policy.compiled import CompiledBundle
from gateway.policy.decision import QuotaLimit, QuotaPlan
from gateway.stages import QuotaStoreUnavailable

router = APIRouter(prefix="/admin/v1", tags=["usage"])

Actor = Annotated[AdminActor, Depends(require_roles("compliance", "auditor"))]


@runtime_checkable
class UsageReporter(Protocol):
    async def usage(self, customer_id: str, plan: QuotaPlan) -> dict[str, object]: ...


def tier_plan(bundle: CompiledBundle, tier: str) -> QuotaPlan:
    """Every limit the tier defines: the default bucket and each capability's."""
    quotas = bundle.quotas.get(tier)
    if quotas is None:
        return QuotaPlan(tier=tier)
    limits: list[QuotaLimit] = list(quotas.default)
    for capability in sorted(quotas.per_capability):
        limits.extend(quotas.per_capability[capability])
    return QuotaPlan(
        tier=tier,
        limits=tuple(limits),
        default_max_tokens=quotas.default_max_tokens,
        fail_open=quotas.fail_open,
    )


@router.get("/customers/{customer_id}/usage")
async def customer_usage(
    customer_id: str, actor: Actor, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    # With the list in force: a customer held for a rescreen is metered as public.
    principal = await load_customer(session, customer_id, list_in_force(services.identifier))
    if principal is None:
        raise HTTPException(404, f"customer {customer_id!r} not found")
    bundle = services.policy.current
    tier, demotion = effective_tier(principal, bundle, services.clock())
    meter = services.meter
    if not isinstance(meter, UsageReporter):
        raise HTTPException(501, "the configured quota meter cannot report usage")
    try:
        report = await meter.usage(customer_id, tier_plan(bundle, tier))
    except QuotaStoreUnavailable as exc:
        raise HTTPException(503, "quota store unavailable") from exc
    return {
        **report,
        "assigned_tier": principal.tier,
        "tier_demotion": demotion,
        "policy_version": bundle.version,
    }
