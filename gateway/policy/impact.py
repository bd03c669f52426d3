"""``gateway policy impact``: which recorded decisions a candidate bundle would flip.

Pure: feed it recorded decisions (any iterable of mappings) and a compiled
candidate bundle; it re-decides each one with ``decide`` and counts flips
(allow -> deny and deny -> allow) by deciding rule, model, effective tier and
origin country, keeping a few examples of each.

One recorded item is a mapping with:
- ``facts``: the replay facts (``gateway.policy.replay.replay_facts``), as
  stored in ``DecisionRecord.facts``;
- ``decision``: the recorded ``"allow"`` or ``"deny"``;
- ``ts``: when it was decided (datetime or RFC 3339 string); re-decided at
  this instant unless ``at`` is given;
- optionally ``id`` and ``rule_ids`` (for the examples).

- optionally ``status`` (the HTTP status the client got) and
  ``policy_version`` (the bundle that decided it).

Only outcomes the policy engine decided are replayed: an allow, or a deny
with status 403. A 429 (quota exhausted), 401 or 400 was refused by
something the bundle's rules do not decide, so re-deciding it would report
a "flip" that is no change of policy; those are counted as ``not_policy``.
Records without usable facts are counted as ``skipped``, not guessed at.

Drift: the candidate is judged against the version in force, the one it
would replace. That is ``in_force``, the version of the newest record (the
bundle deciding requests when the log ends). A flip of a record decided
under it is the candidate's doing alone. A record decided under any other
version (an older bundle, or none recorded) differs for two reasons: the
candidate's edits, and every change made between its version and the one in
force (drift). ``by_version`` counts replays and flips per recorded version,
``version_role`` names each one's relation to the replay and ``drift_flips``
counts the flips that may include drift; every example names its version.
The candidate's own version is no drift either: its records differ only in
time (``at``, effective dates).

Capabilities are the recorded ones (prompt text is not kept, see replay.py).

Report mode: a flip whose new deciding rules include a rule the record lists
in ``report_rule_ids`` is a rule staged in report mode and now enforced; those
are counted in ``from_report`` by rule (what switching it on does, measured on
the requests it was reported on). ``report_matches`` counts, per report-mode
rule of the candidate, the replayed records it matches: a dry run of a staged
rule over past traffic, the complement of watching it live.

Effective times: each record is re-decided at its own time unless ``at`` is
given, so a rule of the candidate whose ``effective.from`` is later than a
record's time does not apply to it. An emergency directive is written before
it takes effect: replayed on last week's traffic it flips nothing, which read
as "it refuses nobody". ``not_yet_effective`` counts, per such rule, the
replayed records that predate it (``rule_starts`` has its start), so the
report can say so and name the ``--at`` that asks the real question.

Customers: flips count requests; ``refused_customers`` and
``admitted_customers`` count them per customer (allow->deny and
deny->allow), since "whom does it cut" is a question about customers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide
from gateway.policy.replay import from_replay

MAX_EXAMPLES = 5


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
            ts = _aware(_ts(record["ts"]))
        except (KeyError, ValueError, TypeError):
            return  # no usable time: it cannot be the newest
        # ">=": of records with the same time, the later one in the log wins.
        if self.in_force_ts is None or ts >= self.in_force_ts:
            self.in_force, self.in_force_ts = str(version), ts
            self.in_force_loaded = loaded


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _aware(value: datetime) -> datetime:
    # Records carry UTC; a naive time (a caller's own record) is read as UTC
    # so it compares with the others instead of raising.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UNKNOWN_VERSION = "unknown"
DRIFT = "other: drift included"
DRIFT_POSSIBLE = "not recorded: drift possible"


def decided_by_policy(record: Mapping[str, Any]) -> bool:
    """An allow, or the engine's deny (403); not a quota, auth or request refusal."""
    decision = record.get("decision")
    if decision == "allow":
        return True
    status = record.get("status")
    # No status: a caller building records itself; the decision is the engine's.
    return decision == "deny" and (status is None or status == 403)


def impact(
    records: Iterable[Mapping[str, Any]], bundle: CompiledBundle, at: datetime | None = None
) -> ImpactReport:
    """Re-decide every record against ``bundle`` and count what would change."""
    report = ImpactReport()
    # Only enforced rules: a report rule decides nothing at any time.
    starts = [(r.id, r.start) for r in bundle.rules if r.start is not None and r.mode == "enforce"]
    ends = [(r.id, r.end) for r in bundle.rules if r.end is not None and r.mode == "enforce"]
    exemptions = {r.id for r in bundle.rules if r.effect == "exempt"}
    for record in records:
        report.note_version(record)
        if record.get("kind") == "policy_reload":
            continue  # no decision: only which version was loaded when
        report.total += 1
        if not decided_by_policy(record):
            report.not_policy += 1
            report.not_policy_by_status[str(record.get("status", "?"))] += 1
            continue
        facts = record.get("facts")
        if not facts or "principal" not in facts or "request" not in facts:
            report.skipped += 1
            continue
        try:
            principal, request = from_replay(dict(facts))
            now = at or _ts(record["ts"])
        except (KeyError, ValueError, TypeError) as exc:
            report.skipped += 1
            if len(report.errors) < MAX_EXAMPLES:
                report.errors.append(f"{record.get('id', '?')}: unreadable facts: {exc}")
            continue
        new = decide(principal, request, bundle, now)
        for rule_id, start in starts:
            if _aware(now) < start:
                report.not_yet_effective[rule_id] += 1
                report.rule_starts[rule_id] = start
        for rule_id, end in ends:
            if _aware(now) < end:
                report.still_effective[rule_id] += 1
                report.rule_ends[rule_id] = end
        report.report_matches.update(new.report_rule_ids)
        for rule_id in exemptions.intersection(new.rule_ids) if new.allowed else ():
            report.exempted[rule_id] += 1
            report.exempted_customers.setdefault(rule_id, Counter())[principal.customer_id] += 1
        old = str(record.get("decision"))
        version = str(record.get("policy_version") or UNKNOWN_VERSION)
        per_version = report.by_version.setdefault(version, VersionCount())
        per_version.replayed += 1
        if new.decision == old:
            report.unchanged += 1
            continue
        if new.allowed:
            report.to_allow += 1
            per_version.to_allow += 1
            report.admitted_customers[principal.customer_id] += 1
        else:
            report.to_deny += 1
            per_version.to_deny += 1
            report.refused_customers[principal.customer_id] += 1
        reported = record.get("report_rule_ids") or ()
        for rule_id in new.rule_ids:
            report.by_rule[rule_id] += 1
            if rule_id in reported:
                report.from_report[rule_id] += 1
        report.by_model[request.model] += 1
        report.by_tier[new.effective_tier] += 1
        report.by_country[request.origin.country or "unknown"] += 1
        if len(report.examples) < MAX_EXAMPLES:
            report.examples.append(
                Flip(
                    record_id=record.get("id"),
                    customer_id=principal.customer_id,
                    model=request.model,
                    origin=request.origin.region or request.origin.country,
                    old=old,
                    new=new.decision,
                    old_rule_ids=tuple(record.get("rule_ids") or ()),
                    new_rule_ids=new.rule_ids,
                    policy_version=version,
                )
            )
    return report
