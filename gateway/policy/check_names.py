"""The name checks every section of a policy bundle uses, and what failed items leave.

``NameChecks`` holds a check run's state (the bundle, the names each section
defines, including those of items that failed their own type check, and the
errors and warnings found so far) and the checks of one value: is this name
defined, this country set resolvable, this attribute holdable, this endpoint
proxied, this regex compilable. The walk over the sections is ``checks``'.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.policy import schema as s
from gateway.policy.names import (
    attribute_problem,
    endpoint_problem,
    known_names,
    resolve_country_set,
)
from gateway.policy.yamlsrc import DataPath, PolicyError, SourceMap


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


class NameChecks:
    """A check run's state and the checks of one value; ``checks._Checker`` walks the bundle."""

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
