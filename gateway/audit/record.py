"""The decision record (SPEC section 5), versioned, and its linked outcome.

The pipeline builds one ``DecisionRecord`` per decision (allowed, denied,
refused by quota, 401, 400) and hands it to the audit writer, which assigns
``node_id``, ``seq``, ``prev_hash`` and ``hash`` and commits it before the
request is forwarded. ``facts`` holds what ``gateway policy impact`` needs to
re-decide the request later (never prompt text: ``prompt_sha256`` only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

RECORD_VERSION = 1

RecordKind = Literal["decision", "outcome", "policy_reload", "quota_store", "tombstone"]


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
    policy_version: str | None = None
    quota: dict[str, Any] | None = None
    prompt_sha256: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    """Replay facts: principal record fields and body facts (no prompt text)."""
    kind: RecordKind = "decision"
    version: int = RECORD_VERSION


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
