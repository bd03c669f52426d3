"""The customer's current use of each limit of the plan ``policy explain`` shows.

Read from the live quota store the way ``GET /admin/v1/customers/{id}/usage``
reads it (``Meter.usage``: a peek, consuming nothing), for the plan the
request would be metered against. Where the store cannot be seen, the
document says why rather than showing zeros: ``gateway policy explain``
runs beside the gateway, not in it, so a store kept in the gateway's memory
(no ``GATEWAY_REDIS_URL``) is out of its reach; it reads Redis when set.

The use is the store's now, whatever ``at`` the explanation is for.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from gateway.kyc.schemas import rfc3339
from gateway.policy.decision import QuotaPlan

Source = Literal["memory", "redis"]

NOT_SEEN_MEMORY = (
    "not read: without GATEWAY_REDIS_URL the gateway counts quota use in its own "
    "memory, which this command cannot see; ask the running gateway "
    "(POST /admin/v1/policy/explain, GET /admin/v1/customers/{id}/usage)"
)
NOT_A_CUSTOMER = "not read: an inline principal is no customer the quota store counts for"
NO_REPORTER = "not read: the configured quota meter cannot report usage"


class UsageReader(Protocol):
    """``Meter.usage`` (``gateway.admin.usage.UsageReporter``)."""

    async def usage(self, customer_id: str, plan: QuotaPlan) -> dict[str, object]: ...


def unread(note: str) -> dict[str, Any]:
    return {"source": None, "read_at": None, "note": note}


async def read_usage(
    meter: UsageReader, source: Source, customer_id: str, plan: QuotaPlan, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the ``usage`` note, the store's buckets); a store that fails is said, not raised."""
    from gateway.stages import QuotaStoreUnavailable

    try:
        report = await meter.usage(customer_id, plan)
    except QuotaStoreUnavailable as exc:
        return unread(f"not read ({source} store): {exc}"), []
    buckets = report.get("buckets")
    return (
        {"source": source, "read_at": rfc3339(now), "note": None},
        list(buckets) if isinstance(buckets, list) else [],
    )


def with_usage(
    quota: dict[str, Any], usage: dict[str, Any], buckets: list[dict[str, Any]]
) -> dict[str, Any]:
    """The document's ``quota`` with ``usage``, and each limit with its bucket's
    ``used``, ``remaining``, ``reset_seconds``, ``resets_at``, ``window_seconds``
    (absent, never zero, when the store was not read)."""
    by_slot = {(b["capability"], b["kind"]): b for b in buckets}
    read_at = usage["read_at"]
    limits = []
    for limit in quota["limits"]:
        bucket = by_slot.get((limit["capability"], limit["kind"]))
        if bucket is None or read_at is None:
            limits.append(limit)
            continue
        used, reset = int(bucket["used"]), int(bucket["reset_seconds"])
        # To the second (the store reports whole seconds); none while nothing is held.
        resets_at = (rfc3339(datetime.fromisoformat(read_at) + timedelta(seconds=reset))
                     if reset > 0 else None)  # fmt: skip
        limits.append({
            **limit, "used": used, "remaining": max(int(limit["limit"]) - used, 0),
            "reset_seconds": reset, "resets_at": resets_at,
            "window_seconds": bucket["window_seconds"],
        })  # fmt: skip
    return {**quota, "limits": limits, "usage": usage}
