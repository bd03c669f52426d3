"""The ISO 3166-2 regions a bundle's rules test the request's origin against.

A region rule (``origin_in`` naming ``UA-43``, Crimea) can only match when
the geolocation gives regions: a City or Enterprise ``.mmdb``
(``GATEWAY_GEOIP_DB``). With the default offline RIR data or a Country
database every origin's region is unknown, so such a rule never matches:
a request from Crimea is located as ``UA`` (or ``RU``, where its network is
registered) and the default bundle's ``sanctioned-origin`` serves it. That
was written only in docs/policy.md; ``gateway.geo.region_blind`` now says
it, naming the regions, at start-up and on every reload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.policy.names import resolve_country_set

if TYPE_CHECKING:
    from gateway.policy import schema as s


def origin_regions(bundle: s.Bundle) -> frozenset[str]:
    """Regions named by any ``origin_in`` of any rule (``when``, ``unless``, nested)."""
    groups = dict(bundle.country_groups)
    found: set[str] = set()
    for rule in bundle.rules:
        for condition in (rule.when, rule.unless):
            if condition is not None:
                _collect(condition, groups, found)
    return frozenset(found)


def _collect(cond: s.Condition, groups: dict[str, s.CountryGroup], found: set[str]) -> None:
    if cond.origin_in is not None:
        found.update(resolve_country_set(cond.origin_in, groups)[1])
    for sub in (*(cond.any_ or ()), *(cond.all_ or ()), *((cond.not_,) if cond.not_ else ())):
        _collect(sub, groups, found)
