"""``decide``: the pure policy function. No I/O, no clock, no globals.

    decide(principal, facts, bundle, now) -> Decision

Order of evaluation (Cedar semantics for the rules):

1. ``status: suspended`` -> deny ``customer-suspended``.
2. ``sanctions_status: confirmed_match`` -> deny ``sanctions-confirmed-match``
   (1 and 2: ``account_tier.account_refusal``).
3. The effective tier (``account_tier.effective_tier``): the assigned tier while KYC level,
   expiry, required attributes, required citizenship and a clear sanctions
   status hold; otherwise ``public``, with the reason in ``tier_demotion``.
4. Rules that apply to the requested model and are in force at ``now``
   (``from <= now < until``): every matching deny -> deny with all their ids
   and reasons; else every matching allow -> allow; else ``default-deny``.
   An ``effect: exempt`` rule that matches lifts the deny rules it names
   (``exempts``) first; an allow it made possible lists it among its rules.
   Rules in report mode (``mode: report``) are matched the same way, just
   before, and listed in ``report_rule_ids``/``report_reasons`` whatever the
   outcome; they never take part in the decision. Steps 1 and 2 decide before
   any rule is looked at, so their decisions list no report matches.
5. Quota plan of the effective tier (``quota_plans.quota_plan``). Which buckets apply:
   for every capability the request carries that has an entry in the tier's
   quotas, that entry's limits (bucket = capability); if none of the request's
   capabilities has an entry, the tier's ``default`` limits (bucket = ``default``).
   A tier without a quotas entry gets an empty plan (no limits). A limit of 0
   in any applicable entry means "not offered on this tier": deny 403 with
   ``quota-not-offered:<tier>.<capability>`` (never a 429).

Any exception while evaluating is logged loudly and becomes a deny with rule id
``evaluation-error``: a bug can refuse a request, never allow one. A report
rule only observes, so an exception in one is logged and listed as the report
match ``evaluation-error``, and the decision stands.
"""

from __future__ import annotations

import logging
from datetime import datetime

from gateway.geo.origin import Origin
from gateway.identity.principal import Principal
from gateway.policy.account_tier import PUBLIC, account_refusal, effective_tier
from gateway.policy.compiled import CompiledBundle
from gateway.policy.conditions import EvalContext
from gateway.policy.decision import EVALUATION_ERROR, Decision, QuotaPlan, ReportedDecision
from gateway.policy.facts import BodyFacts, RequestFacts
from gateway.policy.key_scope import KEY_SCOPE, key_scope_refusal
from gateway.policy.quota_plans import quota_plan
from gateway.policy.report import NO_REPORT, Report, match_report_rules
from gateway.policy.ruleindex import CompiledRule, RuleIndex

log = logging.getLogger("gateway.policy")

DEFAULT_DENY = "default-deny"
DEFAULT_DENY_REASON = "No policy rule allows this request."
DEFAULT_ENDPOINT = "/v1/chat/completions"


def _deny(
    bundle: CompiledBundle,
    tier: str,
    rule_ids: tuple[str, ...],
    reasons: tuple[str, ...],
    facts: RequestFacts,
    demotion: str | None,
    report: Report = NO_REPORT,
) -> Decision:
    return _decision(False, bundle, tier, rule_ids, reasons, facts, demotion, report)


def _decision(
    allowed: bool,
    bundle: CompiledBundle,
    tier: str,
    rule_ids: tuple[str, ...],
    reasons: tuple[str, ...],
    facts: RequestFacts,
    demotion: str | None,
    report: Report,
    quota: QuotaPlan | None = None,
) -> Decision:
    if report is NO_REPORT:
        return Decision(
            allowed=allowed,
            effective_tier=tier,
            rule_ids=rule_ids,
            reasons=reasons,
            policy_version=bundle.version,
            capabilities=facts.capabilities,
            quota=quota,
            tier_demotion=demotion,
        )
    # A subclass, built only when report rules matched (see ReportedDecision).
    return ReportedDecision(
        allowed=allowed,
        effective_tier=tier,
        rule_ids=rule_ids,
        reasons=reasons,
        policy_version=bundle.version,
        capabilities=facts.capabilities,
        quota=quota,
        tier_demotion=demotion,
        report_rule_ids=report[0],
        report_reasons=report[1],
    )


def _decide(
    principal: Principal,
    facts: RequestFacts,
    bundle: CompiledBundle,
    now: datetime,
    with_report: bool,
) -> Decision:
    refused = account_refusal(principal)
    if refused is not None:
        demotion = (
            "sanctions screening status is confirmed_match"
            if principal.sanctions_status == "confirmed_match" and principal.status != "suspended"
            else None
        )
        return _deny(bundle, PUBLIC, (refused[0],), (refused[1],), facts, demotion)
    tier, demotion = effective_tier(principal, bundle, now)
    ctx = eval_context(principal, facts, bundle, tier, now)
    ruleset = bundle.rules_for(facts.body.model)
    reports = ruleset.reports
    # Evaluated first, so that every outcome below carries them.
    report = (
        match_report_rules(reports, ctx, now) if with_report and reports is not None else NO_REPORT
    )
    denies = [r for r in ruleset.denies.candidates(ctx) if r.active(now) and r.predicate(ctx)]
    lifted: list[CompiledRule] = []
    if denies and ruleset.exempts is not None:
        denies, lifted = _exempt(denies, ruleset.exempts, ctx, now)
    if denies:
        return _deny(
            bundle,
            tier,
            tuple(r.id for r in denies),
            tuple(r.reason for r in denies),
            facts,
            demotion,
            report,
        )
    if principal.key_models is not None or principal.key_capabilities is not None:
        scoped = key_scope_refusal(principal, facts.body.model, facts.capabilities)
        if scoped is not None:
            return _deny(bundle, tier, (KEY_SCOPE,), (scoped,), facts, demotion, report)
    allows = [r for r in ruleset.allows.candidates(ctx) if r.active(now) and r.predicate(ctx)]
    if not allows:
        return _deny(bundle, tier, (DEFAULT_DENY,), (DEFAULT_DENY_REASON,), facts, demotion, report)
    plan, closed = quota_plan(bundle, tier, facts.capabilities, facts.body.stream)
    if closed is not None:
        return _deny(
            bundle,
            tier,
            (f"quota-not-offered:{tier}.{closed}",),
            (f"The '{closed}' capability is not offered on the {tier} tier.",),
            facts,
            demotion,
            report,
        )
    if lifted:
        # The exemptions that made this allow possible decide it with the
        # allows, in declaration order: the record names the licence used.
        allows = sorted([*allows, *lifted], key=lambda r: r.index)
    return _decision(
        True,
        bundle,
        tier,
        tuple(r.id for r in allows),
        tuple(r.reason for r in allows),
        facts,
        demotion,
        report,
        plan,
    )


def _exempt(
    denies: list[CompiledRule], exempts: RuleIndex, ctx: EvalContext, now: datetime
) -> tuple[list[CompiledRule], list[CompiledRule]]:
    """(the denies no matching exemption lifts, the exemptions that lifted one).

    Runs only when a deny matched, so a bundle's exemptions cost nothing to
    the requests no deny rule refuses."""
    ids = {r.id for r in denies}
    used = [
        r
        for r in exempts.candidates(ctx)
        if not r.exempts.isdisjoint(ids) and r.active(now) and r.predicate(ctx)
    ]
    if not used:
        return denies, []
    lifted_ids = frozenset().union(*(r.exempts for r in used))
    return [r for r in denies if r.id not in lifted_ids], used



def eval_context(
    principal: Principal, facts: RequestFacts, bundle: CompiledBundle, tier: str, now: datetime
) -> EvalContext:
    """What every rule's conditions read, for one request at ``tier`` (also
    ``gateway.policy.explain``'s, which must see exactly what the engine sees)."""
    model = bundle.models.get(facts.body.model)
    return EvalContext(
        principal=principal,
        facts=facts,
        tier=tier,
        now=now,
        kyc_rank=bundle.kyc_rank.get(principal.kyc_level, -1),
        model_tiers=model.tiers if model is not None else frozenset(),
        threshold=bundle.control_threshold_percent,
    )

def decide(
    principal: Principal,
    facts: RequestFacts,
    bundle: CompiledBundle,
    now: datetime,
    *,
    with_report: bool = True,
) -> Decision:
    """The decision for one request; never raises, never allows on error.

    ``with_report=False`` skips the report-mode rules (their matches are not
    wanted, e.g. when listing models): the decision is the same either way.
    """
    try:
        return _decide(principal, facts, bundle, now, with_report)
    except Exception:  # fail closed, loudly: a bug must not become an allow
        log.exception(
            "policy evaluation failed (customer=%s model=%s policy=%s): denying",
            principal.customer_id,
            facts.body.model,
            bundle.version,
        )
        return Decision(
            allowed=False,
            effective_tier=PUBLIC,
            rule_ids=(EVALUATION_ERROR,),
            reasons=("The gateway could not evaluate its policy for this request.",),
            policy_version=bundle.version,
            capabilities=facts.capabilities,
        )


def visible_models(
    principal: Principal,
    bundle: CompiledBundle,
    now: datetime,
    origin: Origin,
    endpoint: str = "/v1/models",
) -> list[str]:
    """Models this caller may use now, for ``GET /v1/models``.

    Each model is decided as a request with empty capabilities from ``origin``
    on ``endpoint``; quota settings do not hide a model, and neither do
    report-mode rules (they never decide; they are not even evaluated here).
    """
    out = []
    for name in bundle.models:
        facts = RequestFacts(
            endpoint=endpoint, api="openai", body=BodyFacts(model=name), origin=origin
        )
        if decide(principal, facts, bundle, now, with_report=False).allowed:
            out.append(name)
    return out
