"""CompiledBundle: the immutable snapshot a decision runs against.

Built once per (re)load by ``compile_bundle`` from a validated ``schema.Bundle``:
country groups resolved to frozensets, regexes compiled (and combined per
capability), conditions compiled to closures, quotas flattened to
``QuotaLimit`` tuples, and rules indexed by model so a decision only looks at
the rules that can apply to the requested model (rules that do not constrain
the model at their top level are in every model's list). Nothing in here reads
the clock: whatever depends on time takes ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from gateway.policy import schema as s
from gateway.policy.conditions import (
    BodyPredicate,
    CompileEnv,
    Predicate,
    compile_body,
    compile_condition,
)
from gateway.policy.decision import QuotaLimit
from gateway.policy.facts import BodyFacts
from gateway.policy.names import resolve_country_set
from gateway.policy.ruleindex import (
    CompiledRule,
    RuleIndex,
    RuleSet,
    rule_controllers,
    rule_guard,
)


@dataclass(frozen=True, slots=True)
class GroupSets:
    countries: frozenset[str]
    regions: frozenset[str]


@dataclass(frozen=True, slots=True)
class CompiledTier:
    name: str
    min_kyc: str
    min_rank: int
    require_attributes: frozenset[str]
    require_citizenship: frozenset[str] | None
    require_citizenship_label: str | None
    kyc_max_age: timedelta | None = None


@dataclass(frozen=True, slots=True)
class CompiledModel:
    name: str
    tiers: frozenset[str]
    upstream: str | None


@dataclass(frozen=True, slots=True)
class TierQuotaPlan:
    tier: str
    default: tuple[QuotaLimit, ...]
    per_capability: Mapping[str, tuple[QuotaLimit, ...]]
    fail_open: bool
    default_max_tokens: int | None


@dataclass(frozen=True, slots=True, eq=False)
class CompiledBundle:
    version: str
    source: s.Bundle
    kyc_levels: tuple[str, ...]
    kyc_rank: Mapping[str, int]
    tiers: Mapping[str, CompiledTier]
    models: Mapping[str, CompiledModel]
    capabilities: tuple[tuple[str, BodyPredicate], ...]
    quotas: Mapping[str, TierQuotaPlan]
    groups: Mapping[str, GroupSets]
    control_threshold_percent: float
    rules: tuple[CompiledRule, ...]
    by_model: Mapping[str, RuleSet]
    common: RuleSet
    """Rules for a model the bundle does not name (only model-agnostic ones)."""
    warnings: tuple[str, ...] = ()
    plan_memo: dict[tuple[str, frozenset[str], bool], Any] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )
    """``quota_plans.quota_plan`` results by (tier, capabilities): a pure function of
    this immutable snapshot, so memoising it is safe and saves an allocation
    per request (and gives the quota meter stable plan objects to cache on)."""

    def rules_for(self, model: str) -> RuleSet:
        return self.by_model.get(model, self.common)

    def upstream_for(self, model: str) -> str | None:
        """The model's own upstream base URL, or None to use GATEWAY_UPSTREAM_URL."""
        compiled = self.models.get(model)
        return compiled.upstream if compiled is not None else None

    def report_rule_ids(self) -> frozenset[str]:
        """Ids of the rules in report mode (logged, never deciding)."""
        return frozenset(r.id for r in self.rules if r.mode == "report")

    def model_names(self) -> tuple[str, ...]:
        return tuple(self.models)

    def capability_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.capabilities)

    def classify(self, body: BodyFacts) -> frozenset[str]:
        return frozenset(name for name, pred in self.capabilities if pred(body))


def _limits(capability: str, limits: s.QuotaLimits | None) -> tuple[QuotaLimit, ...]:
    if limits is None:
        return ()
    return tuple(QuotaLimit(capability, kind, value) for kind, value in limits.items())


def _top_level_models(rule: s.Rule) -> frozenset[str] | None:
    value = rule.when.model_in
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def compile_bundle(
    bundle: s.Bundle, version: str, warnings: tuple[str, ...] = ()
) -> CompiledBundle:
    """Build the snapshot; the bundle must have passed ``loader`` validation."""
    ro = MappingProxyType
    kyc_rank = {level: i for i, level in enumerate(bundle.kyc_levels)}
    env = CompileEnv(groups=bundle.country_groups, kyc_rank=kyc_rank)
    groups = {
        name: GroupSets(frozenset(g.countries), frozenset(g.regions))
        for name, g in bundle.country_groups.items()
    }
    tiers = {}
    for name, tier in bundle.tiers.items():
        citizenship = None
        label = None
        if tier.require_citizenship is not None:
            countries, _, _ = resolve_country_set(tier.require_citizenship, bundle.country_groups)
            citizenship = countries
            label = (
                tier.require_citizenship
                if isinstance(tier.require_citizenship, str)
                else ", ".join(tier.require_citizenship)
            )
        tiers[name] = CompiledTier(
            name,
            tier.min_kyc,
            kyc_rank[tier.min_kyc],
            frozenset(tier.require_attributes),
            citizenship,
            label,
            None if tier.kyc_max_age_days is None else timedelta(days=tier.kyc_max_age_days),
        )
    models = {
        name: CompiledModel(name, frozenset(m.tiers), m.upstream)
        for name, m in bundle.models.items()
    }
    capabilities = tuple((name, compile_body(c.when)) for name, c in bundle.capabilities.items())
    quotas = {
        tier: TierQuotaPlan(
            tier=tier,
            default=_limits("default", q.default),
            per_capability=ro(
                {cap: _limits(cap, lim) for cap, lim in q.capability_limits().items()}
            ),
            fail_open=q.fail_open,
            default_max_tokens=q.default_max_tokens,
        )
        for tier, q in bundle.quotas.items()
    }
    rules = []
    for index, rule in enumerate(bundle.rules):
        when = compile_condition(rule.when, env)
        if rule.unless is not None:
            unless = compile_condition(rule.unless, env)
            predicate: Predicate = _when_unless(when, unless)
        else:
            predicate = when
        eff = rule.effective
        rules.append(
            CompiledRule(
                id=rule.id,
                effect=rule.effect,
                index=index,
                predicate=predicate,
                reason=rule.reason or f"Policy rule {rule.id}.",
                start=eff.from_ if eff else None,
                end=eff.until if eff else None,
                models=_top_level_models(rule),
                guard=rule_guard(rule, bundle.country_groups),
                mode=rule.mode,
                exempts=frozenset(rule.exempts or ()),
                cut=rule.in_flight == "cut",
                controllers=rule_controllers(rule.when, bundle.country_groups),
            )
        )

    def ruleset(model: str | None) -> RuleSet:
        applicable = [
            r for r in rules if r.models is None or (model is not None and model in r.models)
        ]
        # Report rules go to their own index and never into denies/allows: that
        # is what keeps them from deciding, for requests and model listings alike.
        enforced = [r for r in applicable if r.mode == "enforce"]
        reported = [r for r in applicable if r.mode == "report"]
        exempting = [r for r in enforced if r.effect == "exempt"]
        return RuleSet(
            denies=RuleIndex.build([r for r in enforced if r.effect == "deny"]),
            allows=RuleIndex.build([r for r in enforced if r.effect == "allow"]),
            reports=RuleIndex.build(reported) if reported else None,
            exempts=RuleIndex.build(exempting) if exempting else None,
            cut_starts=tuple(
                sorted({r.start for r in enforced if r.cut and r.start is not None})
            ),
        )

    return CompiledBundle(
        version=version,
        source=bundle,
        kyc_levels=tuple(bundle.kyc_levels),
        kyc_rank=ro(kyc_rank),
        tiers=ro(tiers),
        models=ro(models),
        capabilities=capabilities,
        quotas=ro(quotas),
        groups=ro(groups),
        control_threshold_percent=bundle.control_threshold_percent,
        rules=tuple(rules),
        by_model=ro({m: ruleset(m) for m in models}),
        common=ruleset(None),
        warnings=warnings,
    )


def _when_unless(when: Predicate, unless: Predicate) -> Predicate:
    return lambda x: when(x) and not unless(x)
