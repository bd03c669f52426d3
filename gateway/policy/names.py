"""The vocabulary a bundle may use: group names, ISO codes, endpoints, attributes.

Shared by the load-time checks (``checks.py``), the compiler and the policy
test runner, so a name is judged the same way everywhere. Closed sets are
checked because the engine compares strings: a name outside them never
matches, and a rule guarded by it silently does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.kyc.codes import EXTRA_COUNTRIES, is_iso_region, iso_countries
from gateway.kyc.schemas import NAME_PATTERN
from gateway.policy import schema as s
from gateway.proxy.paths import ROUTES

GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ATTRIBUTE = re.compile(NAME_PATTERN)
"""A customer record's attribute (the admin API refuses any other): a name
outside it can never be present, so a condition on it is a typo."""
ENDPOINTS = ROUTES
"""``endpoint_in`` is a closed set: the proxied routes (SPEC section 2). The
proxy serves exact paths only, so any other string never matches a request."""
RESERVED_RULE_IDS = frozenset(
    {"default-deny", "customer-suspended", "evaluation-error", "sanctions-confirmed-match"}
)
RESERVED_RULE_PREFIXES = ("quota-not-offered:",)


def attribute_problem(name: str, where: str = "can never be on a customer record") -> str | None:
    """Why ``name`` is no attribute a customer record can hold, or None."""
    if ATTRIBUTE.fullmatch(name):
        return None
    return f"attribute '{name}' {where} (lower case letters, digits and _, starting with a letter)"


def endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` is no proxied route, or None."""
    if endpoint in ENDPOINTS:
        return None
    return f"unknown endpoint '{endpoint}' (known: {', '.join(sorted(ENDPOINTS))})"


def is_group_name(value: str) -> bool:
    return bool(GROUP_NAME.match(value))


COUNTRY_HINTS = {"UK": "the United Kingdom is GB", "EL": "Greece is GR"}
"""Codes officers write for a country whose ISO code is another."""


def valid_country(code: str) -> bool:
    # Kosovo's XK too: customer records, policy tests and MaxMind origins
    # carry it, so a rule must be able to name it.
    return (
        len(code) == 2 and code.isupper() and (code in EXTRA_COUNTRIES or code in iso_countries())
    )


def country_problem(code: str) -> str:
    """The message for a code ``valid_country`` refuses, with the code meant if known."""
    hint = COUNTRY_HINTS.get(code)
    return f"invalid ISO 3166-1 alpha-2 country code '{code}'" + (f" ({hint})" if hint else "")


def valid_region(code: str) -> bool:
    if "-" not in code or code.upper() != code:
        return False
    return is_iso_region(code)


def known_names(names: Iterable[str], shown: int = 12) -> str:
    """`` (known: a, b, ...)`` for an "unknown name" message: the spelling meant is
    usually among them."""
    ordered = sorted(names)
    if not ordered:
        return " (the bundle defines none)"
    more = f" and {len(ordered) - shown} more" if len(ordered) > shown else ""
    return f" (known: {', '.join(ordered[:shown])}{more})"


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
                upper = item.upper()
                hint = (
                    f" (country codes are upper case: {upper})"
                    if valid_country(upper) or valid_region(upper)
                    else known_names(groups)
                )
                problems.append(f"unknown country group '{item}'{hint}")
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
            problems.append(country_problem(item))
    return frozenset(countries), frozenset(regions), problems
