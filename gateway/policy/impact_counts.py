"""What ``gateway policy impact`` counts (``gateway.policy.impact``): the
report, its flips and per-version counts, and which recorded version is the
one in force.

Separate from ``impact``, which replays the records: the report is also
what the CLI prints (``gateway.cli.impact_report``) and the admin API answers
(``gateway.policy.impact_doc``), and what each of its figures means is said
here, next to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Flip:
    record_id: str | None
    customer_id: str
    model: str
    origin: str | None
    old: str
    new: str
    old_rule_ids: tuple[str, ...]
    new_rule_ids: tuple[str, ...]
    policy_version: str | None = None
    """The version that recorded ``old``."""


@dataclass(slots=True)
class VersionCount:
    """Replays of the records one policy version decided."""

    replayed: int = 0
    to_deny: int = 0
    to_allow: int = 0

    @property
    def flipped(self) -> int:
        return self.to_deny + self.to_allow


@dataclass(slots=True)
class ImpactReport:
    total: int = 0
    skipped: int = 0
    not_policy: int = 0
    """Outcomes the policy engine did not decide (429, 401, 400...): not replayed."""
    not_policy_by_status: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    to_deny: int = 0
    to_allow: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    """Flips by the rule that now decides (the new decision's rule ids)."""
    by_model: Counter[str] = field(default_factory=Counter)
    by_tier: Counter[str] = field(default_factory=Counter)
    by_country: Counter[str] = field(default_factory=Counter)
    examples: list[Flip] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    by_version: dict[str, VersionCount] = field(default_factory=dict)
    """Per recorded policy version (``unknown`` when not recorded)."""
    from_report: Counter[str] = field(default_factory=Counter)
    """Flips now decided by a rule the record names in ``report_rule_ids``."""
    report_matches: Counter[str] = field(default_factory=Counter)
    """Replayed records each of the candidate's report-mode rules matches."""
    in_force: str | None = None
    """The version of the newest record: in force when the log ends (None: none recorded)."""
    in_force_ts: datetime | None = None
    in_force_loaded: bool = False
    """``in_force`` comes from a ``policy_reload`` record newer than every
    decision (a rollback nobody has called since), not from a decision."""
    refused_customers: Counter[str] = field(default_factory=Counter)
    """allow->deny flips per customer id."""
    admitted_customers: Counter[str] = field(default_factory=Counter)
    """deny->allow flips per customer id."""
    not_yet_effective: Counter[str] = field(default_factory=Counter)
    """Per enforced rule of the candidate with an ``effective.from``: replayed
    records decided before it takes effect (so it could not apply to them)."""
    rule_starts: dict[str, datetime] = field(default_factory=dict)
    still_effective: Counter[str] = field(default_factory=Counter)
    """Likewise for ``effective.until``: replayed records decided before the
    rule ends (an order withdrawn from a later instant still applies to them)."""
    rule_ends: dict[str, datetime] = field(default_factory=dict)
    exempted: Counter[str] = field(default_factory=Counter)
    """Per exemption of the candidate: replayed records it allows by lifting a
    deny (flipped or not: a licence changes no decision of the customer it
    was written for, so the flips alone never show whom it serves)."""
    exempted_customers: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def flipped(self) -> int:
        return self.to_deny + self.to_allow

    def version_role(self, version: str, candidate: str) -> str:
        """How the records of ``version`` relate to a replay against ``candidate``."""
        if version == self.in_force:
            return "in force (candidate)" if version == candidate else "in force"
        if version == candidate:
            return "candidate"
        if version == UNKNOWN_VERSION:
            return DRIFT_POSSIBLE
        return DRIFT

    def drift_flips(self, candidate: str) -> int:
        """Flips of records decided under neither the version in force nor the candidate."""
        return sum(
            count.flipped
            for version, count in self.by_version.items()
            if self.version_role(version, candidate) in (DRIFT, DRIFT_POSSIBLE)
        )

    def note_version(self, record: Mapping[str, Any]) -> None:
        """Keep the newest record's version as the one in force.

        A ``policy_reload`` record counts with the version it loaded: after a
        rollback that no request has followed yet, the newest decision still
        names the withdrawn bundle.
        """
        loaded = record.get("kind") == "policy_reload"
        payload = record.get("payload")
        version = (
            payload.get("new_version") if loaded and isinstance(payload, Mapping)
            else record.get("policy_version")
        )  # fmt: skip
        if not version:
            return
        try:
            ts = as_aware(record_time(record["ts"]))
        except (KeyError, ValueError, TypeError):
            return  # no usable time: it cannot be the newest
        # ">=": of records with the same time, the later one in the log wins.
        if self.in_force_ts is None or ts >= self.in_force_ts:
            self.in_force, self.in_force_ts = str(version), ts
            self.in_force_loaded = loaded


def record_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def as_aware(value: datetime) -> datetime:
    # Records carry UTC; a naive time (a caller's own record) is read as UTC
    # so it compares with the others instead of raising.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UNKNOWN_VERSION = "unknown"
DRIFT = "other: drift included"
DRIFT_POSSIBLE = "not recorded: drift possible"
