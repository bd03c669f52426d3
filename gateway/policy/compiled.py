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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from gateway.policy import schema as s
from gateway.policy.checks import resolve_country_set
from gateway.policy.conditions import (
    BodyPredicate,
    CompileEnv,
    EvalContext,
    Predicate,
    compile_body,
    compile_condition,
)
from gateway.policy.decision import QuotaLimit
from gateway.policy.facts import BodyFacts


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


@dataclass(frozen=True, slots=True)
class CompiledModel:
    name: str
    tiers: frozenset[str]
    upstream: str | None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    effect: str
    index: int
    """Declaration order in the merged bundle; decisions list rule ids in this order."""
    predicate: Predicate
    reason: str
    start: datetime | None
    end: datetime | None
    models: frozenset[str] | None
    """Models the rule is limited to at top level (``when.model_in``), or None."""
    guard: tuple[GuardKind, frozenset[str]] | None = None
    """A top-level set the request must hit for the rule to match (see RuleIndex)."""

    def active(self, now: datetime) -> bool:
        """``from <= now < until``."""
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)


GuardKind = str
"""``origin``, ``citizenship``, ``residence``, ``incorporation``, ``controller`` or ``tier``."""

_GUARD_KEYS: tuple[tuple[str, GuardKind], ...] = (
    ("origin_in", "origin"),
    ("citizenship_in", "citizenship"),
    ("residence_in", "residence"),
    ("incorporated_in", "incorporation"),
    ("controlled_by_in", "controller"),
    ("tier_in", "tier"),
)


def _place_keys(code: str | None) -> tuple[str, ...]:
    if code is None:
        return ()
    return (code, code.split("-", 1)[0]) if "-" in code else (code,)


@dataclass(frozen=True, slots=True)
class RuleIndex:
    """Rules of one effect for one model, bucketed by a top-level guard.

    A rule whose ``when`` has a top-level country or tier set (``origin_in``,
    ``citizenship_in``...) can only match a request whose value is in that
    set, so it is filed under each member of the set and only looked at when
    the request has that value; rules without such a guard are always looked
    at. The guard is a necessary condition only: candidates still run their
    full predicate, so indexing never changes a decision (property-tested).
    """

    always: tuple[CompiledRule, ...]
    buckets: Mapping[GuardKind, Mapping[str, tuple[CompiledRule, ...]]]

    @classmethod
    def build(cls, rules: list[CompiledRule]) -> RuleIndex:
        always = []
        buckets: dict[GuardKind, dict[str, list[CompiledRule]]] = {}
        for rule in rules:
            if rule.guard is None:
                always.append(rule)
                continue
            kind, keys = rule.guard
            for key in keys:
                buckets.setdefault(kind, {}).setdefault(key, []).append(rule)
        return cls(
            tuple(always),
            MappingProxyType(
                {
                    kind: MappingProxyType({k: tuple(v) for k, v in by_key.items()})
                    for kind, by_key in buckets.items()
                }
            ),
        )

    def all_rules(self) -> tuple[CompiledRule, ...]:
        """Every rule in the index, in declaration order (for inspection, not decisions)."""
        unique = {r.index: r for r in self.always}
        for by_key in self.buckets.values():
            for rules in by_key.values():
                unique.update((r.index, r) for r in rules)
        return tuple(unique[i] for i in sorted(unique))

    def candidates(self, ctx: EvalContext) -> Sequence[CompiledRule]:
        """Rules that may match, in declaration order."""
        if not self.buckets:
            return self.always
        found: list[CompiledRule] = []
        b = self.buckets
        p = ctx.principal
        for kind, values in (
            ("origin", (ctx.facts.origin.country, ctx.facts.origin.region)),
            ("citizenship", p.citizenships),
            ("residence", _place_keys(p.residence)),
            ("incorporation", _place_keys(p.incorporated_in)),
            ("tier", (ctx.tier,)),
        ):
            by_key = b.get(kind)
            if by_key is not None:
                for value in values:
                    if value is not None:
                        found.extend(by_key.get(value, ()))
        by_controller = b.get("controller")
        if by_controller is not None and p.ownership:
            for country in ctx.controlling():
                found.extend(by_controller.get(country, ()))
        if not found:
            return self.always
        unique = {r.index: r for r in (*self.always, *found)}
        return [unique[i] for i in sorted(unique)]


@dataclass(frozen=True, slots=True)
class RuleSet:
    denies: RuleIndex
    allows: RuleIndex


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

    def rules_for(self, model: str) -> RuleSet:
        return self.by_model.get(model, self.common)

    def upstream_for(self, model: str) -> str | None:
        """The model's own upstream base URL, or None to use GATEWAY_UPSTREAM_URL."""
        compiled = self.models.get(model)
        return compiled.upstream if compiled is not None else None

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


def _guard(
    rule: s.Rule, groups: dict[str, s.CountryGroup]
) -> tuple[GuardKind, frozenset[str]] | None:
    for key, kind in _GUARD_KEYS:
        value = getattr(rule.when, key)
        if value is None:
            continue
        if kind == "tier":
            keys = frozenset([value] if isinstance(value, str) else value)
        else:
            countries, regions, _ = resolve_country_set(value, groups)
            keys = countries if kind in ("citizenship", "controller") else countries | regions
        return (kind, keys) if keys else None
    return None


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
                guard=_guard(rule, bundle.country_groups),
            )
        )

    def ruleset(model: str | None) -> RuleSet:
        applicable = [
            r for r in rules if r.models is None or (model is not None and model in r.models)
        ]
        return RuleSet(
            denies=RuleIndex.build([r for r in applicable if r.effect == "deny"]),
            allows=RuleIndex.build([r for r in applicable if r.effect == "allow"]),
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
