"""Region rules against a geolocation that gives no regions.

An origin rule naming ISO 3166-2 regions (``UA-43``, Crimea) matches only
when the geolocation gives regions: a City or Enterprise ``.mmdb``. With the
offline RIR data or a Country database it never fires. That depends on the
bundle *and* the gateway's settings, so it is no loader warning: the loader
judges files alone. It is a deployment warning, said by ``RegionBlindCheck``
wherever a bundle meets this gateway's geolocation: at start-up, on every
reload that swaps a bundle in (file watch, ``POST /admin/v1/policy/reload``,
a peer's reload), in the reload's and ``POST /admin/v1/policy/validate``'s
``deployment_warnings``, and in ``gateway policy validate --check-geolocation``.
A reload that added Crimea to a group used to be silent: the officer who
added it believed Crimea refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.policy.origin_regions import origin_regions

if TYPE_CHECKING:
    from gateway.policy import schema as s
    from gateway.settings import Settings


@dataclass(frozen=True, slots=True)
class RegionBlindCheck:
    """A ``gateway.policy.holder.DeploymentCheck``: a bundle's region rules
    against the geolocation this gateway locates with."""

    blind_source: str | None
    """The geolocation, described, when it gives no regions; None when it does."""

    def __call__(self, bundle: s.Bundle) -> tuple[str, ...]:
        if self.blind_source is None:
            return ()
        regions = origin_regions(bundle)
        if not regions:
            return ()
        return (
            f"the policy's origin rules name regions ({', '.join(sorted(regions))}) but "
            f"geolocation from {self.blind_source} gives countries only: no origin is ever "
            "in those regions, so a request from one is decided on its country alone "
            "(Crimea as UA, or as RU where its network is registered) and those region "
            "rules never refuse it. Set GATEWAY_GEOIP_DB to a City or Enterprise database "
            "to enforce them",
        )


def blind_source(settings: Settings) -> str | None:
    """What ``settings`` locate with, described, when it gives no regions (opens
    the ``.mmdb`` to read its type: for the CLI, which builds no locator)."""
    if settings.geoip_db is None:
        return IPTOCC_SOURCE
    from gateway.geo.mmdb import MmdbLookup

    mmdb = MmdbLookup(settings.geoip_db)
    try:
        return None if mmdb.gives_regions else mmdb_source(settings, mmdb.database_type)
    finally:
        mmdb.close()


IPTOCC_SOURCE = "the offline RIR data (iptocc)"


def mmdb_source(settings: Settings, database_type: str) -> str:
    return f"{settings.geoip_db} ({database_type})"
