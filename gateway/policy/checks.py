"""Cross-reference checks of a parsed bundle: every name resolves, every code is real.

Run by the loader after each item parsed on its own. Catches at load what
would otherwise surface at request time: unknown group, tier, model,
capability or KYC-level names, endpoints that are no proxied route, attribute
names no customer record can hold, invalid ISO 3166 codes, regexes that do
not compile, duplicate rule ids, rule ids the engine reserves. What each
name may be is ``names.py``'s.
"""

from __future__ import annotations

from gateway.policy import schema as s
from gateway.policy.check_names import Leftovers, NameChecks
from gateway.policy.deadrules import dead_rule_warnings
from gateway.policy.names import (
    RESERVED_RULE_IDS,
    RESERVED_RULE_PREFIXES,
    country_problem,
    is_group_name,
    valid_country,
    valid_region,
)
from gateway.policy.quota_warnings import token_escape, unbounded_output
from gateway.policy.yamlsrc import DataPath, PolicyError, SourceMap

__all__ = ["COUNTRY_SET_KEYS", "QUOTA_CAPABILITY_KEYS", "Leftovers", "check_bundle"]

QUOTA_CAPABILITY_KEYS = "capability keys"
"""Key of a failed quota item's salvaged fields: its capability names."""
COUNTRY_SET_KEYS = (
    "citizenship_in",
    "residence_in",
    "origin_in",
    "controlled_by_in",
    "incorporated_in",
)


class _Checker(NameChecks):
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
            for path, message in (*token_escape(tier, quota), *unbounded_output(tier, quota)):
                self.warn(path, message)


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
