"""``gateway policy impact --customers``'s report (``exposure.Exposure``) as JSON
data: what ``POST /admin/v1/policy/impact`` with ``"customers": true`` answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.policy.compiled import CompiledBundle
from gateway.policy.exposure import Change, Exposure

MAX_ROWS = 50
"""Changes listed per direction, as the CLI's tables; the counts are of them all."""


def _t(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _change(c: Change) -> dict[str, Any]:
    return {"customer_id": c.customer_id, "name": c.name, "citizenships": list(c.citizenships),
            "residence": c.residence, "model": c.model, "capability": c.capability,
            "rule_ids": list(c.rule_ids)}  # fmt: skip


def exposure_document(
    report: Exposure,
    candidate: CompiledBundle,
    against: str,
    at: datetime,
    unknown: list[tuple[str, str]],
) -> dict[str, Any]:
    """Whom the ``candidate`` cuts or admits at ``at``, compared
    with the bundle of version ``against`` at the same instant."""
    return {
        "candidate": candidate.version,
        "against": against,
        "at": _t(at),
        "customers": report.customers,
        "cut_customers": len(report.cut_customers()),
        "granted_customers": len({c.customer_id for c in report.granted}),
        "by_rule": dict(report.by_rule.most_common()),
        "cut": [_change(c) for c in report.cut[:MAX_ROWS]],
        "cut_total": len(report.cut),
        "granted": [_change(c) for c in report.granted[:MAX_ROWS]],
        "granted_total": len(report.granted),
        # A licence naming an id no record holds matches nobody.
        "unknown_customer_ids": [{"rule_id": r, "customer_id": c} for r, c in unknown],
        # A rule that starts later decides nothing at `at`: judge again at its start.
        "not_yet_effective": [
            {"rule_id": rule.id, "from": _t(rule.start)}
            for rule in candidate.rules
            if rule.mode == "enforce" and rule.start is not None and at < rule.start
        ],
    }
