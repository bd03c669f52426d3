"""ISO 3166 code validation (pycountry), used by the customer schemas and the CLI."""

from __future__ import annotations

import pycountry

# User-assigned but in wide use (Kosovo); pycountry does not list it.
EXTRA_COUNTRIES = frozenset({"XK"})


def country_code(value: str) -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased; ValueError names the bad value."""
    code = value.strip().upper()
    if len(code) == 2 and (code in EXTRA_COUNTRIES or pycountry.countries.get(alpha_2=code)):
        return code
    raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")


def region_code(value: str) -> str:
    """An ISO 3166-2 subdivision code such as ``UA-43``."""
    code = value.strip().upper()
    found = pycountry.subdivisions.get(code=code)  # type: ignore[no-untyped-call]
    if "-" in code and found is not None:
        return code
    raise ValueError(f"{value!r} is not an ISO 3166-2 region code")


def country_or_region(value: str) -> str:
    """Either form: ``US`` or ``US-CA``."""
    return region_code(value) if "-" in value else country_code(value)
