"""``decide``: the pure policy function. No I/O, no clock, no globals.

    decide(principal, facts, bundle, now) -> Decision

Order of evaluation (Cedar semantics for the rules):

1. ``status: suspended`` -> deny ``customer-suspended``.
2. ``sanctions_status: confirmed_match`` -> deny ``sanctions-confirmed-match``.
3. The effective tier (``effective_tier``): the assigned tier while KYC level,
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
5. Quota plan of the effective tier (``quota_plan``). Rule for which buckets apply:
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
from datetime import UTC, datetime

from gateway.geo.origin import Origin
from gateway.identity.principal import Principal
from gateway.policy.compiled import CompiledBundle
from gateway.policy.conditions import EvalContext, kyc_expired, kyc_too_old
from gateway.policy.decision import (
    EVALUATION_ERROR,
    Decision,
    QuotaLimit,
    QuotaPlan,
    ReportedDecision,
)
from gateway.policy.facts import BodyFacts, RequestFacts
from gateway.policy.key_scope import KEY_SCOPE, key_scope_refusal
from gateway.policy.report import NO_REPORT, Report, match_report_rules
from gateway.policy.ruleindex import CompiledRule, RuleIndex

log = logging.getLogger("gateway.policy")

PUBLIC = "public"
DEFAULT_DENY = "default-deny"
DEFAULT_DENY_REASON = "No policy rule allows this request."
DEFAULT_ENDPOINT = "/v1/chat/completions"


def effective_tier(
    principal: Principal, bundle: CompiledBundle, now: datetime
) -> tuple[str, str | None]:
    """(tier, reason it differs from the assigned tier or None)."""
    assigned = principal.tier
    tier = bundle.tiers.get(assigned)
    if tier is None:
        return PUBLIC, f"assigned tier '{assigned}' is not defined in the policy bundle"
    if assigned == PUBLIC:
        return PUBLIC, None
    if principal.sanctions_status != "clear":
        # A hold for a rescreen is no lead: the record says why it is held.
        return PUBLIC, principal.sanctions_hold or (
            f"sanctions screening status is {principal.sanctions_status}"
        )
    rank = bundle.kyc_rank.get(principal.kyc_level, -1)
    if rank < tier.min_rank:
        return PUBLIC, (
            f"KYC level '{principal.kyc_level}' is below tier {assigned}'s minimum '{tier.min_kyc}'"
        )
    if kyc_expired(principal, now):
        return PUBLIC, f"KYC expired at {_rfc3339(principal.kyc_expires_at)}"
    if tier.kyc_max_age is not None and kyc_too_old(principal, tier.kyc_max_age, now):
        verified = principal.kyc_verified_at
        when = "at an unrecorded time" if verified is None else f"at {_rfc3339(verified)}"
        return PUBLIC, (
            f"KYC verified {when}; tier {assigned} requires re-verification every "
            f"{tier.kyc_max_age.days} days"
        )
    missing = tier.require_attributes - principal.attributes
    if missing:
        return PUBLIC, f"missing required attribute(s): {', '.join(sorted(missing))}"
    if tier.require_citizenship is not None and principal.citizenships.isdisjoint(
        tier.require_citizenship
    ):
        return PUBLIC, f"tier {assigned} requires citizenship in {tier.require_citizenship_label}"
    return assigned, None


def _rfc3339(value: datetime | None) -> str:
    # As the admin API writes times (UTC, ``Z``): the demotion reason is kept in
    # decision records, where an auditor compares it with the customer record.
    if value is None:
        return "never"
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


def default_output_tokens(
    principal: Principal, bundle: CompiledBundle, now: datetime
) -> int | None:
    """The effective tier's ``default_max_tokens``: the output bound of a request
    that names none (``facts.with_output_bound``)."""
    if account_refusal(principal) is not None:
        return None  # refused whatever it asks; nothing will be generated
    tier, _ = effective_tier(principal, bundle, now)
    quotas = bundle.quotas.get(tier)
    return quotas.default_max_tokens if quotas is not None else None


def quota_plan(
    bundle: CompiledBundle, tier: str, capabilities: frozenset[str], streaming: bool = False
) -> tuple[QuotaPlan, str | None]:
    """(plan, the first bucket with a 0 limit or None); see the module docstring."""
    key = (tier, capabilities, streaming)
    memo = bundle.plan_memo.get(key)
    if memo is None:
        memo = bundle.plan_memo[key] = _quota_plan(bundle, tier, capabilities, streaming)
    result: tuple[QuotaPlan, str | None] = memo
    return result


def _quota_plan(
    bundle: CompiledBundle, tier: str, capabilities: frozenset[str], streaming: bool
) -> tuple[QuotaPlan, str | None]:
    tq = bundle.quotas.get(tier)
    if tq is None:
        return QuotaPlan(tier=tier), None
    limits: list[QuotaLimit] = []
    for cap in sorted(capabilities):
        limits.extend(tq.per_capability.get(cap, ()))
    if not any(cap in tq.per_capability for cap in capabilities):
        limits.extend(tq.default)
    # A 0 limit closes the bucket, except ``concurrent_streams: 0``, which
    # closes it to streams only: a non-streaming request holds no stream slot.
    closed = next(
        (
            lim.capability
            for lim in limits
            if lim.limit == 0 and (streaming or lim.kind != "concurrent_streams")
        ),
        None,
    )
    plan = QuotaPlan(
        tier=tier,
        limits=tuple(limits),
        default_max_tokens=tq.default_max_tokens,
        fail_open=tq.fail_open,
    )
    return plan, closed


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


def account_refusal(principal: Principal) -> tuple[str, str] | None:
    """``(rule id, reason)`` when the account itself cannot be served, whatever
    it asks for: suspended, or a confirmed sanctions match."""
    if principal.status == "suspended":
        return "customer-suspended", "This account is suspended."
    if principal.sanctions_status == "confirmed_match":
        return "sanctions-confirmed-match", "This account cannot be served (sanctions screening)."
    return None


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
