"""``gateway policy impact``'s report (``impact_counts.ImpactReport``) as JSON data:
what ``POST /admin/v1/policy/impact`` answers, with the figures, notes and
tables ``gateway.cli.impact_report`` prints."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from gateway.policy.impact_counts import ImpactReport

MAX_CUSTOMERS = 50
"""Customers listed per direction, as the CLI's tables; ``count`` is of them all."""


def _t(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _counts(counter: Counter[str]) -> dict[str, int]:
    return dict(counter.most_common())  # most first, as the CLI's tables


def _customers(counter: Counter[str]) -> dict[str, Any]:
    top = [{"customer_id": c, "flips": n} for c, n in counter.most_common(MAX_CUSTOMERS)]
    return {"count": len(counter), "top": top}


def impact_document(report: ImpactReport, candidate: str) -> dict[str, Any]:
    """The report of a replay against the bundle of version ``candidate``."""
    return {
        "candidate": candidate,
        "total": report.total, "skipped": report.skipped, "unchanged": report.unchanged,
        "to_deny": report.to_deny, "to_allow": report.to_allow,
        "not_policy": report.not_policy,
        "not_policy_by_status": _counts(report.not_policy_by_status),
        # A directive written before it takes effect flips nothing on past
        # traffic: these say so, with the instant to replay at (`at`).
        "not_yet_effective": [
            {"rule_id": rule, "records_before": n, "from": _t(report.rule_starts[rule])}
            for rule, n in sorted(report.not_yet_effective.items())
        ],
        "still_effective": [
            {"rule_id": rule, "records_before": n, "until": _t(report.rule_ends[rule])}
            for rule, n in sorted(report.still_effective.items())
        ],
        "exemptions": [
            {"rule_id": rule, "decisions": n,
             "customers": _customers(report.exempted_customers[rule])}
            for rule, n in sorted(report.exempted.items())
        ],
        "in_force": report.in_force,
        "in_force_loaded": report.in_force_loaded,
        "by_version": [
            {"version": version, "replayed": c.replayed, "to_deny": c.to_deny,
             "to_allow": c.to_allow, "role": report.version_role(version, candidate)}
            for version, c in sorted(report.by_version.items(), key=lambda kv: -kv[1].replayed)
        ],
        "drift_flips": report.drift_flips(candidate),
        "by_rule": _counts(report.by_rule),
        "by_model": _counts(report.by_model),
        "by_tier": _counts(report.by_tier),
        "by_country": _counts(report.by_country),
        "from_report": _counts(report.from_report),
        "report_matches": _counts(report.report_matches),
        "refused_customers": _customers(report.refused_customers),
        "admitted_customers": _customers(report.admitted_customers),
        "examples": [
            {"record_id": f.record_id, "customer_id": f.customer_id, "model": f.model,
             "origin": f.origin, "old": f.old, "new": f.new,
             "old_rule_ids": list(f.old_rule_ids), "new_rule_ids": list(f.new_rule_ids),
             "policy_version": f.policy_version}
            for f in report.examples
        ],
        "skipped_reasons": list(report.errors),  # records that could not be replayed
    }
