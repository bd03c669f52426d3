"""The decision record (SPEC section 5), versioned, and its linked outcome.

The pipeline builds one ``DecisionRecord`` per decision (allowed, denied,
refused by quota, 401, 400) and hands it to the audit writer, which assigns
``node_id``, ``seq``, ``prev_hash`` and ``hash`` and commits it before the
request is forwarded. ``facts`` holds what ``gateway policy impact`` needs to
re-decide the request later (never prompt text: ``prompt_sha256`` only).

Versions are per record kind. Decision records are version 2: they always
carry ``report_rule_ids`` and ``report_reasons`` (report-mode rules that
matched; empty lists when none did). Version 1 decision records predate report
mode and lack both keys; a reader takes them as empty (no gateway that wrote
version 1 could load a report rule). Outcome and event records are version 1.
Verification never depends on the version: it re-hashes the stored bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gateway.identity.ownership_snapshot import OwnershipSnapshot

RECORD_VERSION = 1
"""Outcome and event records."""
DECISION_RECORD_VERSION = 2
"""Decision records; 2 added ``report_rule_ids`` and ``report_reasons``."""
REPORT_INDEX_PREFIX = "report:"
"""Side-index key prefix of a report-mode match (``report:<rule id>``). Rule ids
cannot contain ``:`` and no engine id starts with ``report:``, so the keys of
deciding rules and of report matches never collide in ``audit_decision_rules``."""

UNHASHED = "unhashed"
"""Metadata key of a ``DecisionRecord`` attribute that travels with the record
to the writer but is not one of its fields (``chain.DECISION_FIELDS``)."""

KIND_LEN = 16
"""Width of ``audit_records.kind`` (PostgreSQL holds it to that; SQLite does not)."""
RecordKind = Literal[
    "decision", "outcome", "policy_reload", "policy_refused", "quota_store", "tombstone",
    "batch_bound", "batch_charged",
]


@dataclass(slots=True)
class DecisionRecord:
    id: str
    ts: datetime
    decision: Literal["allow", "deny"]
    status: int
    """The HTTP status the client gets (200 for an allow that is forwarded)."""
    endpoint: str
    customer_id: str | None = None
    key_id: str | None = None
    effective_tier: str | None = None
    kyc_level: str | None = None
    citizenships: list[str] = field(default_factory=list)
    residence: str | None = None
    origin_country: str | None = None
    origin_region: str | None = None
    client_ip: str | None = None
    model: str | None = None
    capabilities: list[str] = field(default_factory=list)
    rule_ids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    report_rule_ids: list[str] = field(default_factory=list)
    """Report-mode rules that matched: they did not decide, the client never sees them."""
    report_reasons: list[str] = field(default_factory=list)
    policy_version: str | None = None
    quota: dict[str, Any] | None = None
    prompt_sha256: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    """Replay facts: principal record fields and body facts (no prompt text)."""
    kind: RecordKind = "decision"
    version: int = DECISION_RECORD_VERSION
    ownership_snapshot: OwnershipSnapshot | None = field(
        default=None, compare=False, repr=False, metadata={UNHASHED: True})
    """The tree ``facts.principal.ownership_sha256`` names: not a field of the
    record (not hashed); the writer stores it once, in the same transaction as
    the first record that names it (``gateway.audit.ownership_snapshots``)."""

    def index_keys(self) -> list[str]:
        """Its rows in the rule-id side index (see ``rule_index_keys``)."""
        return rule_index_keys(self.rule_ids, self.report_rule_ids)


@dataclass(slots=True)
class OutcomeRecord:
    """What happened after forwarding; linked to its decision by ``decision_id``."""

    id: str
    ts: datetime
    decision_id: str
    upstream_status: int | None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None
    bytes_out: int | None = None
    error: str | None = None
    """``upstream_unreachable``, ``upstream_timeout``, ``client_disconnected``..."""
    kind: RecordKind = "outcome"
    version: int = RECORD_VERSION


def rule_index_keys(rule_ids: list[str], report_rule_ids: list[str]) -> list[str]:
    """A decision's keys in ``audit_decision_rules``: what ``?rule_id=`` and
    ``?report_rule_id=`` read. The writer stores them and verify recomputes them
    from the hashed body, with this one function."""
    # f-string, not +: verify feeds it bodies that may have been tampered with
    # (a number in the list must be reported as a mismatch, not crash verify).
    return [*rule_ids, *(f"{REPORT_INDEX_PREFIX}{r}" for r in report_rule_ids)]
