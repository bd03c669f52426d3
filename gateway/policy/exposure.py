"""``gateway policy impact --customers``: which customers a bundle change cuts.

``impact`` replays recorded traffic, so it sees only the customers who called
in its window, as they were then. A directive against the citizens of a
country is about every customer holding that citizenship, including those who
have not called this week: this judges every customer record, for every model
of the candidate, twice, and lists the customers whose access changes.

    after  = the candidate at ``at``
    before = ``baseline`` at ``at`` when given (``--against OLD``), else the
             candidate at ``now`` (what changes when its timed rules start or
             end: a directive written at 02:00 for 06:00, judged at 06:00)

A customer is judged as a request from its residence country (origin
unknown without one), for each model with no capability and then with each
capability of the candidate alone: a directive that cuts one model's
``coding`` for the citizens of a country leaves them the model, and judged
without capabilities it used to be reported as cutting nobody. A model lost
whole is one change (capability ``None``), not one per capability. Rules on
origins other than the residence, on combinations of capabilities or on
prompts are not exercised here (``impact`` on recorded traffic covers them).
Suspended customers are refused either way and are not listed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.geo.origin import Origin
from gateway.identity.principal import Principal
from gateway.policy import schema as s
from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide
from gateway.policy.facts import BodyFacts, RequestFacts

ENDPOINT = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class Change:
    customer_id: str
    name: str
    citizenships: tuple[str, ...]
    residence: str | None
    model: str
    capability: str | None
    """The capability the customer loses (or gains) on ``model``; ``None``:
    the model itself, with no capability."""
    now_allowed: bool
    rule_ids: tuple[str, ...]
    """The deciding rules after the change."""


@dataclass(slots=True)
class Exposure:
    customers: int = 0
    cut: list[Change] = field(default_factory=list)
    """Access lost: allowed before, refused after."""
    granted: list[Change] = field(default_factory=list)
    by_rule: Counter[str] = field(default_factory=Counter)
    """Customers cut (each once per rule, whatever the models), by the rule
    that refuses them after."""

    def cut_customers(self) -> set[str]:
        return {c.customer_id for c in self.cut}


def _facts(principal: Principal, model: str, capability: str | None) -> RequestFacts:
    country = principal.residence.split("-", 1)[0] if principal.residence else None
    region = principal.residence if principal.residence and "-" in principal.residence else None
    return RequestFacts(
        endpoint=ENDPOINT,
        api="openai",
        body=BodyFacts(model=model),
        origin=Origin(None, country, region),
        capabilities=frozenset() if capability is None else frozenset((capability,)),
    )


def exposure(
    principals: Iterable[Principal],
    candidate: CompiledBundle,
    at: datetime,
    baseline: CompiledBundle | None,
    now: datetime,
) -> Exposure:
    before_bundle, before_at = (baseline, at) if baseline is not None else (candidate, now)
    report = Exposure()
    rules: set[str] = set()
    for principal in principals:
        if principal.status != "active":
            continue
        report.customers += 1
        for model in candidate.models:
            for capability in (None, *candidate.capability_names()):
                facts = _facts(principal, model, capability)
                after = decide(principal, facts, candidate, at, with_report=False)
                before = decide(principal, facts, before_bundle, before_at, with_report=False)
                if after.allowed == before.allowed:
                    continue
                change = Change(
                    customer_id=principal.customer_id,
                    name=principal.name,
                    citizenships=tuple(sorted(principal.citizenships)),
                    residence=principal.residence,
                    model=model,
                    capability=capability,
                    now_allowed=after.allowed,
                    rule_ids=after.rule_ids,
                )
                if after.allowed:
                    report.granted.append(change)
                else:
                    report.cut.append(change)
                    rules.update(after.rule_ids)
                if capability is None:
                    break  # the model itself changed: each capability on it with it
        report.by_rule.update(rules)
        rules.clear()
    return report


def unknown_customers(bundle: s.Bundle, known: set[str]) -> list[tuple[str, str]]:
    """(rule id, customer id) for each ``customer_in`` id no customer record holds.

    Only the customer records know the ids, so ``validate`` cannot: a licence
    whose customer id is mistyped matches nobody, and the licensed customer
    is refused once the directive starts.
    """
    found: list[tuple[str, str]] = []
    for rule in bundle.rules:
        for condition in (rule.when, rule.unless):
            for customer in _customer_ids(condition):
                if customer not in known and (rule.id, customer) not in found:
                    found.append((rule.id, customer))
    return found


def named_customers(bundle: s.Bundle) -> set[str]:
    """Every id a rule's ``customer_in`` names (in ``when`` or ``unless``, at any depth)."""
    return {c for rule in bundle.rules for cond in (rule.when, rule.unless)
            for c in _customer_ids(cond)}  # fmt: skip


def _customer_ids(c: s.Condition | None) -> list[str]:
    if c is None:
        return []
    ids = [c.customer_in] if isinstance(c.customer_in, str) else list(c.customer_in or ())
    for sub in (*(c.any_ or ()), *(c.all_ or ()), *((c.not_,) if c.not_ else ())):
        ids.extend(_customer_ids(sub))
    return ids
