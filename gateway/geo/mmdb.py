"""Country (and region) from a MaxMind-format ``.mmdb`` (``GATEWAY_GEOIP_DB``).

Only databases whose records carry a country are accepted, each read with the
``geoip2`` method its type needs: Enterprise (``enterprise()``, with
subdivisions), City, including DB-IP's ``compat=City`` (``city()``, with
subdivisions) and Country (``country()``). Any other type (ASN, ISP, Domain,
Connection-Type, Anonymous-IP...) is refused when the file is opened, naming
the type: ``gateway serve`` makes that exit 2 (``cli/serve.py``). It used to
open fine, and then every lookup raised TypeError, every request from a public
address a bare 500 with no decision recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from geoip2.models import Country

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
        # City and Enterprise answers are Country answers with subdivisions added.
        methods: dict[str, Callable[[str], Country]] = {
            "Enterprise": reader.enterprise, "City": reader.city, "Country": reader.country,
        }  # fmt: skip
        self._read = methods[kind]

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
                region = f"{country}-{subdivisions[0].iso_code}"
        return country, region

    def close(self) -> None:
        self._reader.close()
