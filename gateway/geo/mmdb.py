"""Country (and region) from a MaxMind-format ``.mmdb`` (``GATEWAY_GEOIP_DB``).

Only databases whose records carry a country are accepted, each read with the
``geoip2`` method its type needs: Enterprise (``enterprise()``, with
subdivisions), City, including DB-IP's ``compat=City`` (``city()``, with
subdivisions) and Country (``country()``). A subdivision becomes a region only
as a valid ISO 3166-2 code (``region_code``). Any other type (ASN, ISP, Domain,
Connection-Type, Anonymous-IP...) is refused when the file is opened, naming
the type: ``gateway serve`` makes that exit 2 (``cli/serve.py``). It used to
open fine, and then every lookup raised TypeError, every request from a public
address a bare 500 with no decision recorded.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.kyc.codes import is_iso_region
from gateway.ops.throttle import Throttle

if TYPE_CHECKING:
    from geoip2.models import Country

log = logging.getLogger("gateway.geo")

_KINDS = ("Enterprise", "City", "Country")
"""Accepted database types, by the substring geoip2 itself matches them on."""


class UnsupportedDatabase(ValueError):
    """The file is a MaxMind database whose records carry no country."""


class MmdbLookup:
    """``gateway.geo.locate.Lookup`` over a MaxMind-format file."""

    def __init__(self, path: Path) -> None:
        import geoip2.database

        reader = geoip2.database.Reader(str(path))
        self.database_type = str(reader.metadata().database_type)
        kind = next((k for k in _KINDS if k in self.database_type), None)
        if kind is None:
            reader.close()
            raise UnsupportedDatabase(
                f"{path} is a {self.database_type!r} database, whose records carry no "
                "country; use a Country, City or Enterprise database"
            )
        self._reader = reader
        self._bad_regions = Throttle()
        # City and Enterprise answers are Country answers with subdivisions added.
        methods: dict[str, Callable[[str], Country]] = {
            "Enterprise": reader.enterprise, "City": reader.city, "Country": reader.country,
        }  # fmt: skip
        self._read = methods[kind]
        self.gives_regions = kind != "Country"
        """City and Enterprise records carry subdivisions; Country ones do not."""

    def __call__(self, ip: str) -> tuple[str | None, str | None]:
        """(country, region) for ``ip``; raises on a database that cannot be read
        (the locator answers an unknown origin then, and logs it)."""
        import geoip2.errors
        import geoip2.models

        try:
            response = self._read(ip)
        except geoip2.errors.AddressNotFoundError:
            return None, None
        country = response.country.iso_code or response.registered_country.iso_code
        region = None
        if country and isinstance(response, geoip2.models.City):
            subdivisions = response.subdivisions
            if len(subdivisions) and subdivisions[0].iso_code:
                written = subdivisions[0].iso_code
                region = region_code(country, written)
                if region is None and self._bad_regions.due():
                    log.warning("%s: subdivision %r of %s (%s) is no ISO 3166-2 code; "
                                "region taken as unknown", self.database_type, written,
                                country, ip)  # fmt: skip
        return country, region

    def close(self) -> None:
        self._reader.close()


@functools.lru_cache(maxsize=4096)
def region_code(country: str, subdivision: str) -> str | None:
    """The ISO 3166-2 code for a database's subdivision, or None if it names none.

    MaxMind writes the part after the country (``43``), some databases the
    whole code (``UA-43``): prefixed blindly, that was ``UA-UA-43``, which no
    region rule (the Crimea one included) ever matches. A whole code is kept
    as written, whatever country the record names: it is the database's word
    on the region. Checked against the ISO list (memoised: codes repeat across
    addresses, and the check scans the list), so what reaches the policy is a
    real code or nothing; the country stays either way.
    """
    code = subdivision.strip().upper()
    if "-" not in code:
        code = f"{country}-{code}"
    return code if is_iso_region(code) else None
