"""Cross-reference checks of a parsed bundle: every name resolves, every code is real.

Run by the loader after each item parsed on its own. Catches at load what
would otherwise surface at request time: unknown group, tier, model,
capability or KYC-level names, endpoints that are no proxied route, attribute
names no customer record can hold, invalid ISO 3166 codes, regexes that do
not compile, duplicate rule ids, rule ids the engine reserves. What each
name may be is ``names.py``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.policy import schema as s
from gateway.policy.deadrules import dead_rule_warnings
from gateway.policy.names import (
    RESERVED_RULE_IDS,
    RESERVED_RULE_PREFIXES,
    attribute_problem,
    country_problem,
    endpoint_problem,
    is_group_name,
    known_names,
    resolve_country_set,
    valid_country,
    valid_region,
)
from gateway.policy.yamlsrc import DataPath, PolicyError, SourceMap

QUOTA_CAPABILITY_KEYS = "capability keys"
"""Key of a failed quota item's salvaged fields: its capability names."""
COUNTRY_SET_KEYS = (
    "citizenship_in",
    "residence_in",
    "origin_in",
    "controlled_by_in",
    "incorporated_in",
)


def _names(value: s.NameSet) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@dataclass(slots=True)
class Leftovers:
    """What the loader knows of the items that failed their own type check.

    A failed item is left out of the bundle, but its name is still defined (a
    rule naming it must not get a misleading "unknown" error) and its valid
    fields are still checked (their errors are real, not follow-on).
    """

    rule_index: Sequence[int] | None = None
    """Original index of each ``bundle.rules`` entry (failed rules are left out)."""
    invalid_names: dict[str, set[str]] = field(default_factory=dict)
    """Section -> names whose definition failed its type check."""
    kyc_levels_unusable: bool = False
    """``kyc_levels`` failed and no list of names could be read: no level is unknown."""
    failed: dict[str, list[tuple[str | int, dict[str, Any]]]] = field(default_factory=dict)
    """Section -> (name or rule index, the fields that are valid on their own)."""
    names_incomplete: bool = False
    """A file did not parse: its names are unknown, so no name is reported unknown."""


class _Checker:
    def __init__(self, bundle: s.Bundle, source: SourceMap, leftovers: Leftovers) -> None:
        self.b = bundle
        self.source = source
        self.left = leftovers
        self.rule_index = (
            list(leftovers.rule_index)
            if leftovers.rule_index is not None
            else list(range(len(bundle.rules)))
        )
        invalid = leftovers.invalid_names
        # Invalid groups resolve to nothing here: their own errors are reported.
        self.groups_all: dict[str, s.CountryGroup] = {
            **{name: s.CountryGroup() for name in invalid.get("country_groups", ())},
            **bundle.country_groups,
        }
        self.tier_names = set(bundle.tiers) | invalid.get("tiers", set())
        self.model_names = set(bundle.models) | invalid.get("models", set())
        self.capability_names = set(bundle.capabilities) | invalid.get("capabilities", set())
        self.errors: list[PolicyError] = []
        self.warnings: list[PolicyError] = []
        self.duplicated: set[str] = set()
        """Rule ids defined twice: reported as such, not again through ``exempts``."""

    def failed(self, section: str) -> list[tuple[str | int, dict[str, Any]]]:
        return self.left.failed.get(section, [])

    def kyc_level(self, path: DataPath, level: str) -> None:
        if self.left.names_incomplete or self.left.kyc_levels_unusable:
            return
        if level not in self.b.kyc_levels:
            self.error(path, f"unknown KYC level '{level}'")

    def error(self, path: DataPath, message: str) -> None:
        file, line = self.source.locate(path)
        self.errors.append(PolicyError(file, line, self.source.format(path), message))

    def warn(self, path: DataPath, message: str) -> None:
        file, line = self.source.locate(path)
        self.warnings.append(PolicyError(file, line, self.source.format(path), message))

    def known_set(
        self, path: DataPath, value: s.NameSet, universe: Iterable[str], what: str
    ) -> None:
        if self.left.names_incomplete:
            return
        names = set(universe)
        for i, item in enumerate(_names(value)):
            if item not in names:
                self.error(
                    path if isinstance(value, str) else (*path, i),
                    f"unknown {what} '{item}'{known_names(names)}",
                )

    def country_set(self, path: DataPath, value: s.NameSet) -> None:
        _, _, problems = resolve_country_set(value, self.groups_all)
        if self.left.names_incomplete:
            problems = [p for p in problems if not p.startswith("unknown country group")]
        for problem in problems:
            self.error(path, problem)

    def attributes(self, path: DataPath, value: s.NameSet) -> None:
        for i, name in enumerate(_names(value)):
            problem = attribute_problem(name)
            if problem is not None:
                self.error(path if isinstance(value, str) else (*path, i), problem)

    def endpoints(self, path: DataPath, value: s.NameSet) -> None:
        for i, endpoint in enumerate(_names(value)):
            problem = endpoint_problem(endpoint)
            if problem is not None:
                self.error(path if isinstance(value, str) else (*path, i), problem)

    def regex(self, path: DataPath, value: s.NameSet) -> None:
        for i, pattern in enumerate(_names(value)):
            try:
                re.compile(pattern)
            except re.error as exc:
                self.error(
                    path if isinstance(value, str) else (*path, i),
                    f"invalid regex {pattern!r}: {exc}",
                )

    def run(self) -> None:
        self.groups()
        self.levels()
        self.tiers()
        self.models()
        self.capabilities()
        self.rules()
        self.quotas()

    def groups(self) -> None:
        items = [(name, g.countries, g.regions) for name, g in self.b.country_groups.items()]
        for name, fields in self.failed("country_groups"):
            items.append((str(name), fields.get("countries", []), fields.get("regions", [])))
        for name, countries, regions in items:
            path: DataPath = ("country_groups", name)
            if not is_group_name(name):
                self.error(
                    path,
                    f"group name '{name}' must be lower case "
                    "(letters, digits, _), so it never reads as an ISO code",
                )
            for i, code in enumerate(countries):
                if not valid_country(code):
                    self.error((*path, "countries", i), country_problem(code))
            for i, code in enumerate(regions):
                if not valid_region(code):
                    self.error((*path, "regions", i), f"invalid ISO 3166-2 region code '{code}'")
            if "CN" in countries and "HK" not in countries:
                # regimes-and-kyc.md: "HK maps to CN everywhere" in the EAR's
                # country groups. A warning, not an error: a group may mean China
                # alone on purpose (a rule about the mainland's own law).
                self.warn(
                    path,
                    "lists CN but not HK: the EAR has treated Hong Kong as China since "
                    "2020-12-23 (15 CFR 740 Supp. No. 1), so a Hong Kong origin, citizen or "
                    "owner is outside this group; add HK unless that is intended",
                )

    def levels(self) -> None:
        seen: set[str] = set()
        for i, level in enumerate(self.b.kyc_levels):
            if level in seen:
                self.error(("kyc_levels", i), f"duplicate KYC level '{level}'")
            seen.add(level)

    def tiers(self) -> None:
        # Required even in a bundle with no tiers at all: without it hot reload
        # would swap in a bundle nobody can be served by.
        if "public" not in self.tier_names and not self.left.names_incomplete:
            self.error(
                ("tiers",),
                "a 'public' tier is required: it is where a customer "
                "falls back to when its assigned tier does not hold",
            )
        items: list[tuple[str, str | None, s.NameSet | None, list[str]]] = [
            (name, tier.min_kyc, tier.require_citizenship, tier.require_attributes)
            for name, tier in self.b.tiers.items()
        ]
        for name, fields in self.failed("tiers"):
            items.append(
                (
                    str(name),
                    fields.get("min_kyc"),
                    fields.get("require_citizenship"),
                    fields.get("require_attributes", []),
                )
            )
        for name, min_kyc, citizenship, attributes in items:
            path: DataPath = ("tiers", name)
            if min_kyc is not None:
                self.kyc_level((*path, "min_kyc"), min_kyc)
            if citizenship is not None:
                self.country_set((*path, "require_citizenship"), citizenship)
            # A required attribute no record can hold demotes every customer
            # of the tier to public, silently.
            self.attributes((*path, "require_attributes"), attributes)

    def models(self) -> None:
        if not self.model_names and not self.left.names_incomplete:
            self.error(("models",), "at least one model is required")
        for name, model in self.b.models.items():
            path: DataPath = ("models", name)
            self.known_set((*path, "tiers"), model.tiers, self.tier_names, "tier")
            if not model.tiers:
                self.warn(path, f"model '{name}' is not reachable from any tier")
        for key, fields in self.failed("models"):
            if "tiers" in fields:
                self.known_set(("models", key, "tiers"), fields["tiers"], self.tier_names, "tier")

    def capabilities(self) -> None:
        for name, cap in self.b.capabilities.items():
            self.body_condition(("capabilities", name, "when"), cap.when)
        for key, fields in self.failed("capabilities"):
            if "when" in fields:
                self.body_condition(("capabilities", key, "when"), fields["when"])

    def body_condition(self, path: DataPath, cond: s.BodyCondition) -> None:
        if cond.prompt_matches is not None:
            self.regex((*path, "prompt_matches"), cond.prompt_matches)
        for key, subs in (("any", cond.any_), ("all", cond.all_)):
            for i, sub in enumerate(subs or []):
                self.body_condition((*path, key, i), sub)
        if cond.not_ is not None:
            self.body_condition((*path, "not"), cond.not_)

    def rules(self) -> None:
        items: list[tuple[int, str | None, s.Condition | None, s.Condition | None]] = [
            (self.rule_index[position], rule.id, rule.when, rule.unless)
            for position, rule in enumerate(self.b.rules)
        ]
        for index, fields in self.failed("rules"):
            assert isinstance(index, int)
            items.append((index, fields.get("id"), fields.get("when"), fields.get("unless")))
        seen: dict[str, int] = {}
        for index, rule_id, when, unless in sorted(items, key=lambda item: item[0]):
            path: DataPath = ("rules", index)
            if rule_id is not None:
                if rule_id in seen:
                    first: DataPath = ("rules", seen[rule_id], "id")
                    file, line = self.source.locate(first)
                    self.error(
                        (*path, "id"),
                        f"duplicate rule id '{rule_id}' (first defined at {file}:{line})",
                    )
                    here, again = self.source.locate((*path, "id"))
                    if here != file:
                        # Files merge in name order: the officer's new file may
                        # come first, and must be named where the fix belongs.
                        self.error(first, f"rule id '{rule_id}' is defined again at {here}:{again}")
                    self.duplicated.add(rule_id)
                else:
                    seen[rule_id] = index
                if rule_id in RESERVED_RULE_IDS or rule_id.startswith(RESERVED_RULE_PREFIXES):
                    self.error((*path, "id"), f"rule id '{rule_id}' is reserved by the engine")
            if when is not None:
                self.condition((*path, "when"), when)
            if unless is not None:
                self.condition((*path, "unless"), unless)
        self.exemptions()

    def exemptions(self) -> None:
        """An ``exempts`` list names deny rules of the bundle: a typo would lift
        nothing while the bundle read as if the licence were honoured."""
        effects: dict[str, str | None] = {rule.id: rule.effect for rule in self.b.rules}
        for _, fields in self.failed("rules"):
            # A rule that failed its own check still defines its id: "unknown
            # rule id" here would send the officer hunting a typo that is not there.
            if isinstance(fields.get("id"), str):
                effects.setdefault(fields["id"], fields.get("effect"))
        for position, rule in enumerate(self.b.rules):
            for i, target in enumerate(rule.exempts or ()):
                path: DataPath = ("rules", self.rule_index[position], "exempts", i)
                effect = effects.get(target)
                if target in self.duplicated:
                    continue
                if target not in effects:
                    self.error(path, f"unknown rule id '{target}'")
                elif effect is not None and effect != "deny":
                    self.error(path, f"rule '{target}' is not a deny rule (effect: {effect})")

    def condition(self, path: DataPath, c: s.Condition) -> None:
        for key in COUNTRY_SET_KEYS:
            value = getattr(c, key)
            if value is not None:
                self.country_set((*path, key), value)
        if c.kyc_at_least is not None:
            self.kyc_level((*path, "kyc_at_least"), c.kyc_at_least)
        if c.tier_in is not None:
            self.known_set((*path, "tier_in"), c.tier_in, self.tier_names, "tier")
        if c.model_in is not None:
            self.known_set((*path, "model_in"), c.model_in, self.model_names, "model")
        if c.capability_in is not None:
            self.known_set(
                (*path, "capability_in"), c.capability_in, self.capability_names, "capability"
            )
        if c.endpoint_in is not None:
            self.endpoints((*path, "endpoint_in"), c.endpoint_in)
        if c.has_attribute is not None:
            self.attributes((*path, "has_attribute"), c.has_attribute)
        if c.prompt_matches is not None:
            self.regex((*path, "prompt_matches"), c.prompt_matches)
        for key, subs in (("any", c.any_), ("all", c.all_)):
            for i, sub in enumerate(subs or []):
                self.condition((*path, key, i), sub)
        if c.not_ is not None:
            self.condition((*path, "not"), c.not_)

    def quotas(self) -> None:
        items = [(tier, list(quota.capability_limits())) for tier, quota in self.b.quotas.items()]
        for tier, fields in self.failed("quotas"):
            items.append((str(tier), list(fields.get(QUOTA_CAPABILITY_KEYS, []))))
        known = ", ".join(["default", *sorted(self.capability_names)])
        for tier, caps in items:
            path: DataPath = ("quotas", tier)
            if self.left.names_incomplete:
                continue
            if tier not in self.tier_names:
                self.error(path, f"unknown tier '{tier}'")
            for cap in caps:
                if cap not in self.capability_names:
                    self.error((*path, cap), f"unknown capability '{cap}' (known: {known})")
        for tier, quota in self.b.quotas.items():
            self.token_escape(tier, quota)
            self.unbounded_output(tier, quota)

    def unbounded_output(self, tier: str, quota: s.TierQuota) -> None:
        """Warn where a tier with token limits gives no ``default_max_tokens``.

        A request naming no bound is then forwarded unbounded: it reserves only
        its input, an upstream may generate up to the model's limit against it,
        and ``max_tokens_over`` never matches it (``facts.with_output_bound``).
        """
        if quota.default_max_tokens is not None:
            return
        limited = {"tokens_per_minute", "tokens_per_day"}
        entries = [quota.default, *quota.capability_limits().values()]
        if any(limits is not None and {k for k, _ in limits.items()} & limited
               for limits in entries):
            self.warn(
                ("quotas", tier),
                "token limits but no 'default_max_tokens': a request that names no "
                "max_tokens is forwarded unbounded, reserves only its input and never "
                "matches max_tokens_over",
            )

    def token_escape(self, tier: str, quota: s.TierQuota) -> None:
        """Warn where a capability entry drops the token limits ``default`` sets.

        A request is metered against the entries of its capabilities *instead
        of* ``default``: an ``agentic`` entry with only a request rate makes
        any request that adds one dummy tool free of every token limit, the
        cheapest way around a token quota there is.
        """
        if quota.default is None:
            return
        limited = {"tokens_per_minute", "tokens_per_day"}
        default_kinds = {kind for kind, _ in quota.default.items()} & limited
        if not default_kinds:
            return
        for cap, limits in quota.capability_limits().items():
            if any(value == 0 for _, value in limits.items()):
                continue  # not offered: nothing to escape into
            if not {kind for kind, _ in limits.items()} & limited:
                self.warn(
                    ("quotas", tier, cap),
                    f"'{cap}' sets no token limit while 'default' does "
                    f"({', '.join(sorted(default_kinds))}): requests carrying '{cap}' "
                    "are metered on this entry only, so they have no token limit",
                )


def check_bundle(
    bundle: s.Bundle, source: SourceMap, leftovers: Leftovers | None = None
) -> tuple[list[PolicyError], list[PolicyError]]:
    """(errors, warnings) of the cross-reference checks.

    ``leftovers.rule_index[i]`` is where ``bundle.rules[i]`` stood in the
    merged files (the loader drops rules that failed their type check); errors
    name that original index so the source map finds the right file and line.
    """
    checker = _Checker(bundle, source, leftovers or Leftovers())
    checker.run()
    dead = dead_rule_warnings(bundle.rules, checker.rule_index, source)
    return checker.errors, checker.warnings + dead
