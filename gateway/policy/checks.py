"""Cross-reference checks of a parsed bundle: every name resolves, every code is real.

Run by the loader after each item parsed on its own. Catches at load what
would otherwise surface at request time: unknown group, tier, model,
capability or KYC-level names, invalid ISO 3166 codes, regexes that do not
compile, duplicate rule ids, rule ids the engine reserves. Also shared with
the compiler: ``resolve_country_set`` and ``is_group_name``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from gateway.kyc.codes import is_iso_region, iso_countries
from gateway.policy import schema as s
from gateway.policy.yamlsrc import DataPath, PolicyError, SourceMap, format_path

GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED_RULE_IDS = frozenset(
    {"default-deny", "customer-suspended", "evaluation-error", "sanctions-confirmed-match"}
)
RESERVED_RULE_PREFIXES = ("quota-not-offered:",)
COUNTRY_SET_KEYS = (
    "citizenship_in",
    "residence_in",
    "origin_in",
    "controlled_by_in",
    "incorporated_in",
)


def is_group_name(value: str) -> bool:
    return bool(GROUP_NAME.match(value))


def valid_country(code: str) -> bool:
    return len(code) == 2 and code.isupper() and code in iso_countries()


def valid_region(code: str) -> bool:
    if "-" not in code or code.upper() != code:
        return False
    return is_iso_region(code)


def resolve_country_set(
    value: s.NameSet, groups: dict[str, s.CountryGroup]
) -> tuple[frozenset[str], frozenset[str], list[str]]:
    """(countries, regions, problems) of a set: group names and ISO codes mixed."""
    items = [value] if isinstance(value, str) else list(value)
    countries: set[str] = set()
    regions: set[str] = set()
    problems: list[str] = []
    for item in items:
        if is_group_name(item):
            group = groups.get(item)
            if group is None:
                problems.append(f"unknown country group '{item}'")
            else:
                countries.update(group.countries)
                regions.update(group.regions)
        elif "-" in item:
            if valid_region(item):
                regions.add(item)
            else:
                problems.append(f"invalid ISO 3166-2 region code '{item}'")
        elif valid_country(item):
            countries.add(item)
        else:
            problems.append(f"invalid ISO 3166-1 alpha-2 country code '{item}'")
    return frozenset(countries), frozenset(regions), problems


def _names(value: s.NameSet) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class _Checker:
    def __init__(self, bundle: s.Bundle, source: SourceMap, rule_index: Sequence[int]) -> None:
        self.b = bundle
        self.source = source
        self.rule_index = rule_index
        self.errors: list[PolicyError] = []
        self.warnings: list[PolicyError] = []

    def error(self, path: DataPath, message: str) -> None:
        file, line = self.source.locate(path)
        self.errors.append(PolicyError(file, line, format_path(path), message))

    def warn(self, path: DataPath, message: str) -> None:
        file, line = self.source.locate(path)
        self.warnings.append(PolicyError(file, line, format_path(path), message))

    def known_set(
        self, path: DataPath, value: s.NameSet, universe: Iterable[str], what: str
    ) -> None:
        names = set(universe)
        for i, item in enumerate(_names(value)):
            if item not in names:
                self.error(
                    path if isinstance(value, str) else (*path, i), f"unknown {what} '{item}'"
                )

    def country_set(self, path: DataPath, value: s.NameSet) -> None:
        _, _, problems = resolve_country_set(value, self.b.country_groups)
        for problem in problems:
            self.error(path, problem)

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
        for name, group in self.b.country_groups.items():
            path: DataPath = ("country_groups", name)
            if not is_group_name(name):
                self.error(
                    path,
                    f"group name '{name}' must be lower case "
                    "(letters, digits, _), so it never reads as an ISO code",
                )
            for i, code in enumerate(group.countries):
                if not valid_country(code):
                    self.error(
                        (*path, "countries", i), f"invalid ISO 3166-1 alpha-2 country code '{code}'"
                    )
            for i, code in enumerate(group.regions):
                if not valid_region(code):
                    self.error((*path, "regions", i), f"invalid ISO 3166-2 region code '{code}'")

    def levels(self) -> None:
        seen: set[str] = set()
        for i, level in enumerate(self.b.kyc_levels):
            if level in seen:
                self.error(("kyc_levels", i), f"duplicate KYC level '{level}'")
            seen.add(level)

    def tiers(self) -> None:
        if self.b.tiers and "public" not in self.b.tiers:
            self.error(
                ("tiers",),
                "a 'public' tier is required: it is where a customer "
                "falls back to when its assigned tier does not hold",
            )
        for name, tier in self.b.tiers.items():
            path: DataPath = ("tiers", name)
            if tier.min_kyc not in self.b.kyc_levels:
                self.error((*path, "min_kyc"), f"unknown KYC level '{tier.min_kyc}'")
            if tier.require_citizenship is not None:
                self.country_set((*path, "require_citizenship"), tier.require_citizenship)

    def models(self) -> None:
        for name, model in self.b.models.items():
            path: DataPath = ("models", name)
            self.known_set((*path, "tiers"), model.tiers, self.b.tiers, "tier")
            if not model.tiers:
                self.warn(path, f"model '{name}' is not reachable from any tier")

    def capabilities(self) -> None:
        for name, cap in self.b.capabilities.items():
            self.body_condition(("capabilities", name, "when"), cap.when)

    def body_condition(self, path: DataPath, cond: s.BodyCondition) -> None:
        if cond.prompt_matches is not None:
            self.regex((*path, "prompt_matches"), cond.prompt_matches)
        for key, subs in (("any", cond.any_), ("all", cond.all_)):
            for i, sub in enumerate(subs or []):
                self.body_condition((*path, key, i), sub)
        if cond.not_ is not None:
            self.body_condition((*path, "not"), cond.not_)

    def rules(self) -> None:
        seen: dict[str, int] = {}
        for position, rule in enumerate(self.b.rules):
            index = self.rule_index[position]
            path: DataPath = ("rules", index)
            if rule.id in seen:
                file, line = self.source.locate(("rules", seen[rule.id]))
                self.error(
                    (*path, "id"), f"duplicate rule id '{rule.id}' (first defined at {file}:{line})"
                )
            else:
                seen[rule.id] = index
            if rule.id in RESERVED_RULE_IDS or rule.id.startswith(RESERVED_RULE_PREFIXES):
                self.error((*path, "id"), f"rule id '{rule.id}' is reserved by the engine")
            self.condition((*path, "when"), rule.when)
            if rule.unless is not None:
                self.condition((*path, "unless"), rule.unless)

    def condition(self, path: DataPath, c: s.Condition) -> None:
        for key in COUNTRY_SET_KEYS:
            value = getattr(c, key)
            if value is not None:
                self.country_set((*path, key), value)
        if c.kyc_at_least is not None and c.kyc_at_least not in self.b.kyc_levels:
            self.error((*path, "kyc_at_least"), f"unknown KYC level '{c.kyc_at_least}'")
        if c.tier_in is not None:
            self.known_set((*path, "tier_in"), c.tier_in, self.b.tiers, "tier")
        if c.model_in is not None:
            self.known_set((*path, "model_in"), c.model_in, self.b.models, "model")
        if c.capability_in is not None:
            self.known_set(
                (*path, "capability_in"), c.capability_in, self.b.capabilities, "capability"
            )
        if c.endpoint_in is not None:
            for i, ep in enumerate(_names(c.endpoint_in)):
                if not ep.startswith("/"):
                    self.error(
                        (*path, "endpoint_in")
                        if isinstance(c.endpoint_in, str)
                        else (*path, "endpoint_in", i),
                        f"endpoint '{ep}' must start with /",
                    )
        if c.prompt_matches is not None:
            self.regex((*path, "prompt_matches"), c.prompt_matches)
        for key, subs in (("any", c.any_), ("all", c.all_)):
            for i, sub in enumerate(subs or []):
                self.condition((*path, key, i), sub)
        if c.not_ is not None:
            self.condition((*path, "not"), c.not_)

    def quotas(self) -> None:
        for tier, quota in self.b.quotas.items():
            path: DataPath = ("quotas", tier)
            if tier not in self.b.tiers:
                self.error(path, f"unknown tier '{tier}'")
            for cap in quota.capability_limits():
                if cap not in self.b.capabilities:
                    self.error((*path, cap), f"unknown capability '{cap}'")


def check_bundle(
    bundle: s.Bundle, source: SourceMap, rule_index: Sequence[int] | None = None
) -> tuple[list[PolicyError], list[PolicyError]]:
    """(errors, warnings) of the cross-reference checks.

    ``rule_index[i]`` is where ``bundle.rules[i]`` stood in the merged files
    (the loader drops rules that failed their type check); errors name that
    original index so the source map finds the right file and line.
    """
    index = list(rule_index) if rule_index is not None else list(range(len(bundle.rules)))
    checker = _Checker(bundle, source, index)
    checker.run()
    return checker.errors, checker.warnings
