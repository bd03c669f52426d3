"""The human sentence for a quota refusal (429 body, audit reason)."""

from __future__ import annotations

from gateway.quota.buckets import is_token_kind
from gateway.stages import Admission


def _refused_cost(admission: Admission) -> int | None:
    refused = admission.summary.get("refused_by")
    cost = refused.get("cost") if isinstance(refused, dict) else None
    return cost if isinstance(cost, int) else None


def never_fits(admission: Admission) -> bool:
    """True when the refused request reserves more tokens than its window can
    ever hold: no wait helps, so the 429 tells SDKs not to retry it."""
    limit = admission.refused_by
    if admission.allowed or limit is None or not is_token_kind(limit.kind):
        return False
    cost = _refused_cost(admission)
    return cost is not None and cost > limit.limit


def describe_refusal(admission: Admission) -> str:
    """A sentence naming the bucket, for the 429 body and the audit record."""
    limit = admission.refused_by
    if admission.allowed or limit is None:
        return "request admitted"
    what = f"{limit.capability} {limit.kind} limit of {limit.limit}"
    cost = _refused_cost(admission)
    if is_token_kind(limit.kind) and cost is not None:
        if never_fits(admission):
            return (
                f"this request needs {cost} tokens (max_tokens for each answer asked "
                f"for, plus input), more than the {what}; lower max_tokens or n, or "
                "shorten the input"
            )
        message = f"{what} reached (this request reserves {cost} tokens)"
    else:
        message = f"{what} reached"
    if admission.retry_after_seconds is not None:
        message += f"; retry after {admission.retry_after_seconds}s"
    return message
