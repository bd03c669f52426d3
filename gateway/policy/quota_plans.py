"""The quota plan of an effective tier: step 5 of ``decide``.

Which limits apply to a request (the rule is in ``engine.py``'s docstring,
step 5), whether one of them closes the request's bucket, and the output
bound a tier reserves for a request that names none.

Separate from ``engine.py`` because the batch routes and ``GET /v1/models``
build plans and output bounds without deciding a request. Plans are
memoised on the bundle (``CompiledBundle.plan_memo``), so a request pays a
dict lookup, not a plan.
"""

from __future__ import annotations

from datetime import datetime

from gateway.identity.principal import Principal
from gateway.policy.account_tier import account_refusal, effective_tier
from gateway.policy.compiled import CompiledBundle
from gateway.policy.decision import QuotaLimit, QuotaPlan


def default_output_tokens(
    principal: Principal, bundle: CompiledBundle, now: datetime
) -> int | None:
    """The effective tier's ``default_max_tokens``: the output bound of a request
    that names none (``facts.with_output_bound``)."""
    if account_refusal(principal) is not None:
        return None  # refused whatever it asks; nothing will be generated
    tier, _ = effective_tier(principal, bundle, now)
    quotas = bundle.quotas.get(tier)
    return quotas.default_max_tokens if quotas is not None else None


def quota_plan(
    bundle: CompiledBundle, tier: str, capabilities: frozenset[str], streaming: bool = False
) -> tuple[QuotaPlan, str | None]:
    """(plan, the first bucket with a 0 limit or None); the rule: ``engine.py``, step 5."""
    key = (tier, capabilities, streaming)
    memo = bundle.plan_memo.get(key)
    if memo is None:
        memo = bundle.plan_memo[key] = _quota_plan(bundle, tier, capabilities, streaming)
    result: tuple[QuotaPlan, str | None] = memo
    return result


def _quota_plan(
    bundle: CompiledBundle, tier: str, capabilities: frozenset[str], streaming: bool
) -> tuple[QuotaPlan, str | None]:
    tq = bundle.quotas.get(tier)
    if tq is None:
        return QuotaPlan(tier=tier), None
    limits: list[QuotaLimit] = []
    for cap in sorted(capabilities):
        limits.extend(tq.per_capability.get(cap, ()))
    if not any(cap in tq.per_capability for cap in capabilities):
        limits.extend(tq.default)
    # A 0 limit closes the bucket, except ``concurrent_streams: 0``, which
    # closes it to streams only: a non-streaming request holds no stream slot.
    closed = next(
        (
            lim.capability
            for lim in limits
            if lim.limit == 0 and (streaming or lim.kind != "concurrent_streams")
        ),
        None,
    )
    plan = QuotaPlan(
        tier=tier,
        limits=tuple(limits),
        default_max_tokens=tq.default_max_tokens,
        fail_open=tq.fail_open,
    )
    return plan, closed
