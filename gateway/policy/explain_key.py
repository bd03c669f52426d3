"""``policy explain --key``: a request explained as it arrives on one API key.

Support's question "why is this key refused?" is answered as the request
path answers it: the key's customer is the principal (``principal_from``
with the key, as the identify stage builds it, so the engine applies the
key's scope in its place, after the deny rules); a key revoked or expired at
the time asked about is refused before any policy, with the identify stage's
401 (``authentication-failed``). The scope check is spelled out as a rule's
conditions are: each list, the value compared, and whether it held.

Only the key's id is taken (bare or as its ``gk_<id>`` prefix): a whole key
carries its secret, which explain never needs, so it is refused without
being echoed (``explain_key_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.identity.keys import KEY_KIND
from gateway.identity.principal import Principal
from gateway.identity.screening_summary import ListInForce
from gateway.identity.secrets import credential_id
from gateway.identity.store import key_row, principal_from
from gateway.kyc.schemas import as_utc, rfc3339
from gateway.policy.decision import Decision
from gateway.policy.engine import DEFAULT_DENY
from gateway.policy.explain_conditions import ConditionTrace
from gateway.policy.facts import RequestFacts
from gateway.policy.key_scope import KEY_SCOPE, key_scope_refusal

KEY_ID_PROBLEM = "give the key's id or its gk_<id> prefix, never the whole key (its secret)"
AUTHENTICATION_FAILED = "authentication-failed"
"""The rule id the request path records for a 401 (``gateway.proxy.errors.rule_for_status``)."""


def explain_key_id(value: str) -> str | None:
    """The key id meant by ``value`` (the id or ``gk_<id>``); None for a whole
    key (``gk_<id>_<secret>``) or another kind of credential."""
    value = value.strip()
    if value.startswith(f"{KEY_KIND}_") and "_" in value[len(KEY_KIND) + 1 :]:
        return None  # a secret follows the id
    return credential_id(KEY_KIND, value)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    name: str | None
    customer_id: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    allowed_models: tuple[str, ...] | None
    allowed_capabilities: tuple[str, ...] | None
    principal: Principal
    """The customer as the identify stage returns it for this key (scope set)."""

    def state(self, at: datetime) -> str:
        """``live``, or why the identify stage would refuse a request on it at ``at``."""
        if at < self.created_at:
            return "not yet created"
        if self.revoked_at is not None and self.revoked_at <= at:
            return "revoked"
        if self.expires_at is not None and at >= self.expires_at:
            return "expired"
        return "live"

    def refusal(self, at: datetime) -> str | None:
        """The identify stage's 401 reason at ``at`` (``identifier._by_key``), or None."""
        return _REFUSALS.get(self.state(at))


_REFUSALS = {
    "not yet created": "unknown gateway key",
    "revoked": "gateway key revoked",
    "expired": "gateway key expired",
}


async def load_key(
    session: AsyncSession, key_id: str, in_force: ListInForce | None = None
) -> KeyRecord | None:
    """``in_force``: as ``explain_customer.load_customer``'s."""
    row = await key_row(session, key_id)
    if row is None:
        return None
    key, customer = row
    return KeyRecord(
        key_id=key.id, name=key.name, customer_id=customer.id,
        created_at=as_utc(key.created_at),
        expires_at=None if key.expires_at is None else as_utc(key.expires_at),
        revoked_at=None if key.revoked_at is None else as_utc(key.revoked_at),
        allowed_models=None if key.allowed_models is None else tuple(key.allowed_models),
        allowed_capabilities=(None if key.allowed_capabilities is None
                              else tuple(key.allowed_capabilities)),
        principal=principal_from(customer, key.id, "api_key", key, in_force),
    )  # fmt: skip


def scope_checks(key: KeyRecord, facts: RequestFacts) -> tuple[ConditionTrace, ...]:
    """The two lists of the scope, each with the value compared (``key_scope_refusal``'s tests)."""
    model, caps = facts.body.model, facts.capabilities
    models = key.allowed_models
    allowed = key.allowed_capabilities
    return (
        ConditionTrace("allowed_models", _listed(models), model,
                       models is None or model in models),
        ConditionTrace("allowed_capabilities", _listed(allowed),
                       "capabilities {" + ", ".join(sorted(caps)) + "}",
                       allowed is None or caps <= frozenset(allowed)),
    )  # fmt: skip


def scope_outcome(decision: Decision, refuses: str | None) -> str:
    """Where the scope check stood in the engine's order (``engine`` docstring):
    after the account checks and the deny rules, before the allows and quotas."""
    first = decision.rule_ids[0] if decision.rule_ids else ""
    if decision.rule_ids == (KEY_SCOPE,):
        return "decides"
    reached = (decision.allowed or first == DEFAULT_DENY
               or first.startswith("quota-not-offered:"))  # fmt: skip
    if reached:
        return "lets it through"
    would = "would refuse too" if refuses is not None else "would let it through"
    return f"not reached: refused first by {', '.join(decision.rule_ids)} ({would})"


def key_document(
    key: KeyRecord, facts: RequestFacts, decision: Decision, at: datetime
) -> dict[str, Any]:
    refuses = key_scope_refusal(key.principal, facts.body.model, facts.capabilities)
    state = key.state(at)
    return {
        "key_id": key.key_id, "prefix": f"{KEY_KIND}_{key.key_id}", "name": key.name,
        "customer_id": key.customer_id, "state": state,
        "created_at": rfc3339(key.created_at),
        "expires_at": None if key.expires_at is None else rfc3339(key.expires_at),
        "revoked_at": None if key.revoked_at is None else rfc3339(key.revoked_at),
        "allowed_models": None if key.allowed_models is None else sorted(key.allowed_models),
        "allowed_capabilities": (None if key.allowed_capabilities is None
                                 else sorted(key.allowed_capabilities)),
        "checks": [c.document() for c in scope_checks(key, facts)],
        "refuses": refuses,
        "outcome": ("not reached: the key is refused before any policy (401)"
                    if state != "live" else scope_outcome(decision, refuses)),
    }  # fmt: skip


KEY_NOTE = (
    "explained through this key, as a request on it would be: its scope is checked "
    "after the deny rules (rule id key-scope); a key revoked or expired at the time "
    "asked about is refused before any policy (401)"
)


def key_scope_for(
    key: KeyRecord, facts: RequestFacts, decision: Decision, at: datetime
) -> dict[str, Any]:
    """The document's ``key_scope`` when a key is named (the customer's other keys are not)."""
    return {"note": KEY_NOTE, "keys": [], "key": key_document(key, facts, decision, at)}


def _listed(names: tuple[str, ...] | None) -> str:
    return "any" if names is None else "[" + ", ".join(sorted(names)) + "]"
