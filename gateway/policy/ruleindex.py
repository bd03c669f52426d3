"""Rules compiled for one bundle, and the index a decision uses to find them.

``CompiledRule`` is one rule with its condition compiled to a closure;
``RuleIndex`` files the rules of one effect (for one model) under a top-level
guard so a decision evaluates only the rules that can match; ``RuleSet`` is
the deny and allow indexes of one model, plus the index of its report-mode
rules (which are in neither: they never decide).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from gateway.identity.ownership import owner_countries
from gateway.policy import schema as s
from gateway.policy.conditions import EvalContext, Predicate
from gateway.policy.names import resolve_country_set


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
    mode: str = "enforce"
    """``enforce`` or ``report`` (matches logged, never deciding)."""
    exempts: frozenset[str] = frozenset()
    """For ``effect: exempt``: the deny rules it lifts when it matches."""
    cut: bool = False
    """``in_flight: cut``: streams in flight are ended when it starts to refuse them."""
    controllers: tuple[frozenset[str], ...] = ()
    """The country set of each of its ``controlled_by_in`` conditions (outside
    ``not``), one per condition: what a refusal by ownership is explained
    against (``gateway.policy.control``). Kept apart, as the engine tests them:
    30% from one set and 30% from another is control by neither."""

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
            # Aggregate control by a set needs a positive share from at least
            # one of its countries, at some level of the ownership chain: look
            # the rules up under every owner country along a positive share (a
            # country listed twice finds its rules twice; deduplicated below).
            for share in p.ownership:
                if share.percent > 0:
                    found.extend(by_controller.get(share.country, ()))
                    if share.ownership:  # a chain: the countries above it too
                        for country in owner_countries(share.ownership):
                            found.extend(by_controller.get(country, ()))
        if not found:
            return self.always
        unique = {r.index: r for r in (*self.always, *found)}
        return [unique[i] for i in sorted(unique)]


@dataclass(frozen=True, slots=True)
class RuleSet:
    denies: RuleIndex
    allows: RuleIndex
    reports: RuleIndex | None = None
    """Report-mode rules of both effects; None when there are none, so a bundle
    without report rules costs a decision one attribute test."""
    exempts: RuleIndex | None = None
    """Enforced ``effect: exempt`` rules; None when there are none (likewise),
    and only looked at when a deny matched."""
    cut_starts: tuple[datetime, ...] = ()
    """Sorted ``effective.from`` instants of the enforced ``in_flight: cut``
    deny rules: when a stream must be decided again (``gateway.proxy.cut``)."""


def rule_guard(
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


def rule_controllers(
    cond: s.Condition, groups: dict[str, s.CountryGroup]
) -> tuple[frozenset[str], ...]:
    """The country set of every ``controlled_by_in`` in ``cond`` and its ``all``/``any``,
    each apart (a ``not`` one refuses for the absence of control, which has no path to show)."""
    found: list[frozenset[str]] = []
    if cond.controlled_by_in is not None:
        found.append(resolve_country_set(cond.controlled_by_in, groups)[0])
    for sub in (*(cond.all_ or ()), *(cond.any_ or ())):
        found.extend(rule_controllers(sub, groups))
    return tuple(found)
