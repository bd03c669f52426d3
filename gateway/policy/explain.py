"""``explain``: why the gateway would decide a request as it does, rule by rule.

The slow path beside ``engine.decide`` (which stays as it is: no trace is
collected on the request path). The verdict is ``decide``'s own, called on
the same facts; the trace re-evaluates every rule of the bundle in
declaration order, without the rule index, with each condition compiled on
its own (``explain_conditions``), and derives from it which rules decide. The
two are compared: ``trace_agrees`` false would be a bug in one of them (the
tests hold it true for every bundled policy test case).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.identity.principal import Principal
from gateway.kyc.schemas import rfc3339
from gateway.policy.account_tier import account_refusal, effective_tier
from gateway.policy.compiled import CompiledBundle
from gateway.policy.conditions import CompileEnv
from gateway.policy.decision import Decision, QuotaPlan
from gateway.policy.engine import DEFAULT_DENY, decide, eval_context
from gateway.policy.explain_conditions import ConditionTrace, trace_condition
from gateway.policy.facts import RequestFacts
from gateway.policy.key_scope import KEY_SCOPE, key_scope_refusal
from gateway.policy.loader import rule_locations
from gateway.policy.quota_plans import quota_plan
from gateway.policy.ruleindex import CompiledRule

log = logging.getLogger("gateway.policy")

__all__ = ["Explanation", "RuleTrace", "explain", "rule_locations"]

RuleLocation = tuple[str, str, int] | None
"""``(rule id, file, line)`` from ``loader.rule_locations``."""


@dataclass(frozen=True, slots=True)
class RuleTrace:
    id: str
    effect: str
    mode: str
    file: str | None
    line: int | None
    start: datetime | None
    end: datetime | None
    in_force: bool
    applies_to_model: bool
    """False when the rule's top-level ``model_in`` leaves the requested model out."""
    matched: bool
    """The engine's compiled predicate (``when`` and not ``unless``), in force or not."""
    when: tuple[ConditionTrace, ...]
    unless: tuple[ConditionTrace, ...] | None
    outcome: str
    """``decides``, ``no match``, ``not in force``, ``reported``, ``lifted by X``,
    ``overridden by deny``, ``matched, refused by X``, ``not for this model``..."""

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id, "effect": self.effect, "mode": self.mode,
            "file": self.file, "line": self.line,
            "effective": None if self.start is None and self.end is None else {
                "from": rfc3339(self.start) if self.start else None,
                "until": rfc3339(self.end) if self.end else None,
            },
            "in_force": self.in_force, "applies_to_model": self.applies_to_model,
            "matched": self.matched, "outcome": self.outcome,
            "when": [c.document() for c in self.when],
            "unless": None if self.unless is None else [c.document() for c in self.unless],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Explanation:
    principal: Principal
    facts: RequestFacts
    at: datetime
    decision: Decision
    """``decide``'s own verdict on these facts."""
    quota: QuotaPlan
    """The plan of the effective tier for these capabilities (what the meter would check)."""
    trace: tuple[RuleTrace, ...]
    trace_rule_ids: tuple[str, ...]
    """The deciding ids the trace reaches on its own; equal to the decision's."""

    @property
    def status(self) -> int:
        return 200 if self.decision.allowed else self.decision.deny_status

    @property
    def trace_agrees(self) -> bool:
        return self.trace_rule_ids == self.decision.rule_ids


def explain(
    principal: Principal,
    facts: RequestFacts,
    bundle: CompiledBundle,
    at: datetime,
    locations: Sequence[RuleLocation] = (),
) -> Explanation:
    decision = decide(principal, facts, bundle, at)
    tier, _ = effective_tier(principal, bundle, at)
    ctx = eval_context(principal, facts, bundle, tier, at)
    env = CompileEnv(groups=bundle.source.country_groups, kyc_rank=bundle.kyc_rank)
    matched = {r.index: r.predicate(ctx) for r in bundle.rules}
    verdict_ids, outcomes = _trace_verdict(principal, facts, bundle, at, tier, matched)
    traces = []
    for rule in bundle.rules:
        source = bundle.source.rules[rule.index]
        where = locations[rule.index] if rule.index < len(locations) else None
        # A location whose id differs: the files changed since the bundle was compiled.
        cited = where is not None and where[0] == rule.id
        file, line = (where[1], where[2]) if where is not None and cited else (None, None)
        traces.append(
            RuleTrace(
                id=rule.id, effect=rule.effect, mode=rule.mode, file=file, line=line,
                start=rule.start, end=rule.end, in_force=rule.active(at),
                applies_to_model=_applies(rule, facts.body.model),
                matched=matched[rule.index],
                when=trace_condition(source.when, ctx, env),
                unless=None if source.unless is None else trace_condition(source.unless, ctx, env),
                outcome=outcomes.get(rule.index, "no match"),
            )
        )  # fmt: skip
    plan = decision.quota or quota_plan(bundle, tier, facts.capabilities, facts.body.stream)[0]
    if verdict_ids != decision.rule_ids:
        # The document says so too (trace_agrees); the log is where a bug report starts.
        log.error("explain: the trace reaches %s, decide gave %s (customer=%s model=%s policy=%s)",
                  verdict_ids, decision.rule_ids, principal.customer_id, facts.body.model,
                  bundle.version)  # fmt: skip
    return Explanation(principal, facts, at, decision, plan, tuple(traces), verdict_ids)


def _applies(rule: CompiledRule, model: str) -> bool:
    return rule.models is None or model in rule.models


def _trace_verdict(
    principal: Principal,
    facts: RequestFacts,
    bundle: CompiledBundle,
    at: datetime,
    tier: str,
    matched: dict[int, bool],
) -> tuple[tuple[str, ...], dict[int, str]]:
    """(deciding ids, outcome per rule index) from every rule, without the index.

    The engine's order (module docstring of ``engine``), followed from the
    rule-by-rule matches: account, denies less those exempted, key scope,
    allows, quota."""
    outcomes: dict[int, str] = {}
    live: list[CompiledRule] = []
    for rule in bundle.rules:
        if not _applies(rule, facts.body.model):
            outcomes[rule.index] = "not for this model"
        elif not rule.active(at):
            outcomes[rule.index] = "not in force"
        elif rule.mode == "report":
            outcomes[rule.index] = "reported" if matched[rule.index] else "no match (report mode)"
        elif matched[rule.index]:
            live.append(rule)
    refused = account_refusal(principal)
    if refused is not None:
        for rule in live:
            outcomes[rule.index] = f"matched, refused by {refused[0]}"
        return (refused[0],), outcomes
    denies = [r for r in live if r.effect == "deny"]
    deny_ids = {r.id for r in denies}
    used = [r for r in live if r.effect == "exempt" and not r.exempts.isdisjoint(deny_ids)]
    for rule in live:
        if rule.effect == "exempt" and rule not in used:
            outcomes[rule.index] = "matched, nothing to lift"
    lifted: dict[str, str] = {}
    for exempt in used:
        for deny_id in sorted(exempt.exempts & deny_ids):
            lifted.setdefault(deny_id, exempt.id)
    remaining = [r for r in denies if r.id not in lifted]
    for rule in denies:
        if rule.id in lifted:
            outcomes[rule.index] = f"lifted by {lifted[rule.id]}"
    allows = [r for r in live if r.effect == "allow"]
    if remaining:
        for rule in remaining:
            outcomes[rule.index] = "decides"
        for rule in (*allows, *used):
            outcomes[rule.index] = "overridden by deny"
        return tuple(r.id for r in remaining), outcomes
    refusal: str | None = None
    if key_scope_refusal(principal, facts.body.model, facts.capabilities) is not None:
        refusal = KEY_SCOPE
    elif not allows:
        refusal = DEFAULT_DENY
    else:
        closed = quota_plan(bundle, tier, facts.capabilities, facts.body.stream)[1]
        if closed is not None:
            refusal = f"quota-not-offered:{tier}.{closed}"
    if refusal is not None:
        for rule in (*allows, *used):
            outcomes[rule.index] = f"matched, refused by {refusal}"
        return (refusal,), outcomes
    deciding = sorted([*allows, *used], key=lambda r: r.index)
    for rule in deciding:
        outcomes[rule.index] = "decides"
    return tuple(r.id for r in deciding), outcomes
