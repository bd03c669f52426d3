"""Small builders shared by the quota tests."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.policy.decision import QuotaKind, QuotaLimit, QuotaPlan


def plan(*limits: tuple[str, QuotaKind, int], fail_open: bool = False) -> QuotaPlan:
    return QuotaPlan(
        tier="enterprise",
        limits=tuple(QuotaLimit(cap, kind, n) for cap, kind, n in limits),
        default_max_tokens=1000,
        fail_open=fail_open,
    )


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def used(report: dict[str, object], capability: str, kind: str) -> int:
    buckets = report["buckets"]
    assert isinstance(buckets, list)
    for bucket in buckets:
        if bucket["capability"] == capability and bucket["kind"] == kind:
            value = bucket["used"]
            assert isinstance(value, int)
            return value
    raise AssertionError(f"no bucket {capability}/{kind} in {buckets}")
