"""Screening an organization's owners with it: the names in its ownership chain.

An entity owned 50% or more by a listed party is itself blocked (OFAC FAQ
398), so the owning entities' names (``name`` at every level of the record's
``ownership``) are screened with the customer's own, wherever the customer's
name is: at creation, on a change that brings a new name, and by
``gateway customers rescreen``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.kyc.reviews import Hit
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


@dataclass(frozen=True, slots=True)
class NamesScreened:
    best: ScreeningResult
    """The strongest result (stored as the record's best match and score)."""
    hits: list[Hit]
    """Every hit, on every screened name: each is cleared by a review on its own."""


def screen_names(screener: Screener, c: Customer) -> NamesScreened:
    """The customer's name and its owners' names, screened: every hit, and the
    strongest result.

    An entity owned 50% or more by a listed party is itself blocked (OFAC FAQ
    398), so a listed name anywhere in the chain holds the customer for a
    review as a listed name of its own does; the review judges the share.
    """
    best: ScreeningResult | None = None
    hits: list[Hit] = []
    # A name given twice (two owners of one name) is one screened name.
    for name in dict.fromkeys((c.name, *owner_names(c))):
        for result in screener.matches(name):
            if result.status == "potential_match":
                hits.append(Hit(name, result.best_match, result.score, result.source))
            # A hit first, then the highest score; the customer's own name on a tie.
            if best is None or _rank(result) > _rank(best):
                best = result
    assert best is not None  # the customer's own name is always screened
    return NamesScreened(best, hits)


def _rank(result: ScreeningResult) -> tuple[bool, float]:
    return (result.status == "potential_match", result.score)
