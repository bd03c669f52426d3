"""``gateway policy impact``: which recorded decisions a candidate bundle would flip.

Pure: feed it recorded decisions (any iterable of mappings) and a compiled
candidate bundle; it re-decides each one with ``decide`` and counts flips
(allow -> deny and deny -> allow) by deciding rule, model, effective tier and
origin country, keeping a few examples of each (the report:
``gateway.policy.impact_counts``).

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
from datetime import datetime
from typing import Any

from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide
from gateway.policy.impact_counts import (
    UNKNOWN_VERSION,
    Flip,
    ImpactReport,
    VersionCount,
    as_aware,
    record_time,
)
from gateway.policy.replay import from_replay

MAX_EXAMPLES = 5


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
            now = at or record_time(record["ts"])
        except (KeyError, ValueError, TypeError) as exc:
            report.skipped += 1
            if len(report.errors) < MAX_EXAMPLES:
                report.errors.append(f"{record.get('id', '?')}: unreadable facts: {exc}")
            continue
        new = decide(principal, request, bundle, now)
        for rule_id, start in starts:
            if as_aware(now) < start:
                report.not_yet_effective[rule_id] += 1
                report.rule_starts[rule_id] = start
        for rule_id, end in ends:
            if as_aware(now) < end:
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
