"""Screening an organization's owners with it: the names in its ownership chain.

An entity owned 50% or more by a listed party is itself blocked (OFAC FAQ
398), so the owning entities' names (``name`` at every level of the record's
``ownership``) are screened with the customer's own, wherever the customer's
name is: at creation, on a change that brings a new name, and by
``gateway customers rescreen``.
"""

from __future__ import annotations

from typing import Any

from gateway.kyc.screening import Screener, ScreeningResult
from gateway.kyc.tables import Customer


def owner_names(c: Customer) -> list[str]:
    """The names of the owning entities at every level of ``c``'s ownership chain."""
    names: list[str] = []

    def walk(entries: list[dict[str, Any]] | None) -> None:
        for entry in entries or ():
            if entry.get("name"):
                names.append(str(entry["name"]))
            walk(entry.get("ownership"))

    for row in c.ownership:
        if row.name:
            names.append(row.name)
        walk(row.owners)
    return names


def screen_names(screener: Screener, c: Customer) -> ScreeningResult:
    """The customer's name and its owners' names, screened; the strongest result.

    An entity owned 50% or more by a listed party is itself blocked (OFAC FAQ
    398), so a listed name anywhere in the chain holds the customer for a
    review as a listed name of its own does; the review judges the share.
    """
    results = [screener.screen(name) for name in (c.name, *owner_names(c))]
    # A hit first, then the highest score; the customer's own name on a tie.
    return max(results, key=lambda r: (r.status == "potential_match", r.score))
