"""ISO 3166 code validation, used by the policy checks, the customer schemas and the CLI.

The codes are pycountry's (its ISO 3166-1 and 3166-2 data files), read once.
Not ``pycountry.countries.get`` / ``subdivisions.get``: those build a Python
object per subdivision (about 5,000, ~5 MB resident for the life of every
serving process) when only "is this a real code?" is asked.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pycountry

# User-assigned but in wide use (Kosovo); pycountry does not list it.
EXTRA_COUNTRIES = frozenset({"XK"})


def _entries(file_name: str, table: str) -> list[dict[str, str]]:
    with (Path(pycountry.DATABASE_DIR) / file_name).open(encoding="utf-8") as source:
        entries: list[dict[str, str]] = json.load(source)[table]
    return entries


@functools.cache
def iso_countries() -> frozenset[str]:
    """Every ISO 3166-1 alpha-2 code (upper case)."""
    return frozenset(entry["alpha_2"].upper() for entry in _entries("iso3166-1.json", "3166-1"))


@functools.cache
def _iso_regions_text() -> str:
    # Every ISO 3166-2 code, upper case, each between newlines: one ~40 KB
    # string rather than a frozenset of 5,000 strings (~0.8 MB resident in
    # every worker). Lookups are a substring search; they happen when a policy
    # loads or a customer is written, never per request.
    codes = sorted(entry["code"].upper() for entry in _entries("iso3166-2.json", "3166-2"))
    return "\n" + "\n".join(codes) + "\n"


def is_iso_region(code: str) -> bool:
    """Is ``code`` (upper case) an ISO 3166-2 subdivision code, e.g. ``UA-43``?"""
    return "\n" not in code and f"\n{code}\n" in _iso_regions_text()


def country_code(value: str) -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased; ValueError names the bad value."""
    code = value.strip().upper()
    if len(code) == 2 and (code in EXTRA_COUNTRIES or code in iso_countries()):
        return code
    raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")


def region_code(value: str) -> str:
    """An ISO 3166-2 subdivision code such as ``UA-43``."""
    code = value.strip().upper()
    if "-" in code and is_iso_region(code):
        return code
    raise ValueError(f"{value!r} is not an ISO 3166-2 region code")


def country_or_region(value: str) -> str:
    """Either form: ``US`` or ``US-CA``."""
    return region_code(value) if "-" in value else country_code(value)


def place_code(value: str) -> str:
    """A place a customer lives: a country (``UA``) or a subdivision (``UA-43``).

    As ``country_or_region``, with one message for both forms, so a typo is
    reported as what the field accepts rather than as the form it happened to
    resemble.
    """
    try:
        return country_or_region(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an ISO 3166-1 alpha-2 country code (UA) "
            f"nor an ISO 3166-2 subdivision code (UA-43)"
        ) from None
