"""One request's state as it walks the corridor, and its decision record.

The pipeline fills an ``Exchange`` stage by stage; whatever stage ends the
walk (a 401, a 400, a policy deny, a 429, an allow), ``to_record`` turns what
is known by then into the one decision record the audit log keeps for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.audit.ids import new_id
from gateway.audit.record import DecisionRecord
from gateway.geo.origin import Origin
from gateway.identity.principal import Principal
from gateway.identity.screening_summary import FACTS_KEY as SCREENING_FACTS_KEY
from gateway.policy.compiled import CompiledBundle
from gateway.policy.control import FACTS_KEY as CONTROL_FACTS_KEY
from gateway.policy.control import RECORD_PATH_CHARS, control_explanation
from gateway.policy.decision import Decision
from gateway.policy.facts import ApiShape, BodyFacts, RequestFacts
from gateway.policy.replay import replay_facts
from gateway.proxy.batch_charge import ReservedGroup
from gateway.proxy.batch_routes import BatchCall
from gateway.proxy.stored_routes import StoredCall
from gateway.stages import Admission

SUSPENDED = ("customer-suspended",)
"""A suspension refuses before the sanctions status is looked at: no screening facts."""

_UNSTAMPED = datetime.min.replace(tzinfo=UTC)


@dataclass(slots=True)
class Exchange:
    api: ApiShape
    endpoint: str
    peer_ip: str | None
    bundle: CompiledBundle
    """The policy snapshot this request is decided, recorded and routed under."""
    ts: datetime = _UNSTAMPED
    """When it was decided (``stamp``): the record's ``ts``. The arrival time is not kept."""
    id: str = ""
    """The decision id, taken when the decision goes to the log (``stamp``).

    Not when the request arrived: ids order the log for auditors tailing it
    by cursor, and a request whose body took seconds to arrive would commit
    behind faster ones with higher ids, behind every tailing cursor."""
    started: float = field(default_factory=time.perf_counter)
    key_id: str | None = None
    principal: Principal | None = None
    body: BodyFacts | None = None
    origin: Origin | None = None
    facts: RequestFacts | None = None
    decision: Decision | None = None
    admission: Admission | None = None
    rule_ids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    recorded: bool = False
    """Its decision record was handed to the audit sink (see ``Pipeline._record``)."""
    head: bool = False
    """A HEAD request: answered with the GET's status and headers, no content."""
    request_bytes: bytes = b""
    """The body as parsed, re-serialised: forwarded, then released (``take_request_bytes``)."""
    stored: StoredCall | None = None
    """A call on a stored response by id (``gateway.proxy.stored_routes``), else None."""
    batch: BatchCall | None = None
    """A Message Batches call (``gateway.proxy.batch_routes``), else None."""
    batch_facts: dict[str, Any] | None = None
    """What the record says of the batch (``facts.message_batch``): its id or
    requests and models, and for an inner request its ``custom_id``."""
    inner: list[Exchange] | None = None
    """A batch create's inner requests, each decided as a ``/v1/messages``
    request: recorded with this one, in one group commit (``Pipeline._record``)."""
    batch_reserved: list[ReservedGroup] | None = None
    """A batch create: what it reserved per quota group (bound with its id);
    a results download: what its binding says it was charged so far
    (``gateway.proxy.batch_charge``)."""
    extra_admissions: list[Admission] | None = None
    """A batch whose inner requests fall under several quota plans holds one
    admission per plan: ``admission`` is the first, these the rest."""

    @property
    def policy_version(self) -> str:
        return self.bundle.version

    def take_request_bytes(self) -> bytes:
        """The body to forward; the exchange lets go of it, so the caller's
        reference is the last one and a long stream does not hold the prompt."""
        raw, self.request_bytes = self.request_bytes, b""
        return raw

    def stamp(self, now: datetime) -> None:
        """Name and date the decision as it is handed to the log."""
        self.id = new_id()
        self.ts = now

    def refuse(self, rule_id: str, reason: str) -> None:
        """A refusal decided outside the policy engine (401, 400, 429, 503)."""
        self.rule_ids = [rule_id]
        self.reasons = [reason]

    def to_record(self, status: int) -> DecisionRecord:
        principal = self.principal
        decision = self.decision
        allowed = status < 400
        rule_ids = list(decision.rule_ids) if decision and not self.rule_ids else self.rule_ids
        reasons = list(decision.reasons) if decision and not self.reasons else self.reasons
        origin = self.origin
        facts: dict[str, Any] = {}
        snapshot = None
        if principal is not None and self.facts is not None:
            owned = principal.ownership_record()
            facts = replay_facts(principal, self.facts, owned)
            snapshot = owned.snapshot  # the tree the facts name, for the writer
            if decision is not None and decision.tier_demotion is not None:
                # Why the effective tier is not the assigned one (KYC expired,
                # screening, missing attribute...): an auditor reading a deny
                # at ``public`` learns it here rather than by re-deriving it.
                facts["tier_demotion"] = decision.tier_demotion
            if decision is not None and not decision.allowed:
                # ``ts`` is the decision's time within milliseconds (stamped just
                # before this); only ``kyc_expired`` reads it.
                chain = control_explanation(principal, decision, self.bundle, self.facts, self.ts,
                                            RECORD_PATH_CHARS)
                if chain is not None:
                    facts[CONTROL_FACTS_KEY] = chain
                # Held by screening: which names matched (computed at cache load).
                if principal.screening is not None and decision.rule_ids != SUSPENDED:
                    facts[SCREENING_FACTS_KEY] = principal.screening
        if self.stored is not None:
            # The route is recorded by its template: the id and what was done
            # with it are here, for an auditor asking who fetched which output.
            facts["stored_response"] = {
                "id": self.stored.response_id,
                "operation": self.stored.operation,
            }
        if self.batch_facts is not None:
            facts["message_batch"] = self.batch_facts
        prompt = self.body.stored_prompt if self.body is not None else None
        if prompt is not None:
            # Which of the operator's stored prompts ran (or was refused).
            facts["stored_prompt"] = {"id": prompt[0], "version": prompt[1]}
        return DecisionRecord(
            id=self.id,
            ts=self.ts,
            decision="allow" if allowed else "deny",
            status=status,
            endpoint=self.endpoint,
            customer_id=principal.customer_id if principal else None,
            key_id=principal.key_id if principal else self.key_id,
            effective_tier=decision.effective_tier if decision else None,
            kyc_level=principal.kyc_level if principal else None,
            citizenships=sorted(principal.citizenships) if principal else [],
            residence=principal.residence if principal else None,
            origin_country=origin.country if origin else None,
            origin_region=origin.region if origin else None,
            client_ip=origin.client_ip if origin else self.peer_ip,
            model=self.body.model if self.body else None,
            capabilities=sorted(decision.capabilities) if decision else [],
            rule_ids=rule_ids,
            reasons=reasons,
            # What report-mode rules matched stays in the record (and metrics): the
            # client's answer is built from the decision alone, never from these.
            report_rule_ids=list(decision.report_rule_ids) if decision else [],
            report_reasons=list(decision.report_reasons) if decision else [],
            policy_version=self.policy_version,
            quota=self.admission.summary if self.admission else None,
            prompt_sha256=self.body.prompt_sha256 if self.body else None,
            facts=facts,
            ownership_snapshot=snapshot,
        )
