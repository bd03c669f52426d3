"""Who owns an organization, through chains: the OFAC 50% rule, applied to countries.

An organization's ``ownership`` lists its direct owners; an owner that is
itself an entity may list its own owners, and so on (a KYB vendor's ownership
tree). Control by a country set S at threshold T (the bundle's
``control_threshold_percent``, compared as ``>=``):

- an owner is *of S* when its country is in S, or when it is an entity that is
  itself controlled by S (its own owners, recursively, reach T in aggregate);
- the organization's controlled share is the sum of the direct percents of its
  owners that are of S; it is controlled by S when that share reaches T.

Not multiplicative. OFAC FAQ 401 (https://ofac.treasury.gov/faqs/401): if X
owns 50% of A and A owns 50% of B, B is blocked, because A is blocked and A's
whole 50% of B counts, not 25%. So a controlled parent passes its whole direct
share on. Shares add up across branches (FAQ 398, "in the aggregate"): X's
20% held directly plus a controlled A's 30% is 50%. Control without ownership
(board seats, contracts) is not modelled: it does not count under the rule.

Pure functions over a tree bounded at the edge (``gateway.kyc.schemas``:
at most ``MAX_DEPTH`` levels and ``MAX_ENTRIES`` entries), evaluated per
decision: a flat record costs what it did before (one set lookup per owner).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

CONTROL_TOLERANCE_PERCENT = 1e-9
"""Shares are given to a few decimals; the tolerance keeps a binary float sum
such as 33.3 + 16.7 from landing just under a threshold it meets in decimal."""

MAX_DEPTH = 8
"""Levels of owners a record may describe (the customer's direct owners are level 1)."""
MAX_ENTRIES = 256
"""Owner entries in one record, all levels together."""


@dataclass(frozen=True, slots=True)
class Ownership:
    """One owner of an organization: its country, its direct share in percent
    (0-100), and, for an entity, its name and its own owners."""

    country: str
    percent: float
    name: str | None = None
    ownership: tuple[Ownership, ...] = ()


def is_nested(owners: tuple[Ownership, ...]) -> bool:
    """Does any owner list owners of its own (a chain, not a flat list)?"""
    return any(o.ownership for o in owners)


def controlled_share(owners: tuple[Ownership, ...], countries: Collection[str],
                     threshold_percent: float) -> float:
    """Sum of the direct percents of the owners that are of ``countries``."""
    total = 0.0
    for owner in owners:
        # ``_of`` inlined: a flat record (no ``ownership``) pays one set lookup per owner.
        if owner.country in countries or (
            owner.ownership and controlled(owner.ownership, countries, threshold_percent)
        ):
            total += owner.percent
    return total


def reaches(share: float, threshold_percent: float) -> bool:
    return share > 0 and share >= threshold_percent - CONTROL_TOLERANCE_PERCENT


def controlled(owners: tuple[Ownership, ...], countries: Collection[str],
               threshold_percent: float) -> bool:
    return reaches(controlled_share(owners, countries, threshold_percent), threshold_percent)


def _of(owner: Ownership, countries: Collection[str], threshold_percent: float) -> bool:
    if owner.country in countries:
        return True
    # A controlled parent counts with its whole direct share (FAQ 401), not a product.
    return bool(owner.ownership) and controlled(owner.ownership, countries, threshold_percent)


def owner_countries(owners: tuple[Ownership, ...]) -> Iterator[str]:
    """Every country along a positive share, at any level: control by a set
    needs one of them in the set (the rule index looks rules up by these)."""
    for owner in owners:
        if owner.percent > 0:
            yield owner.country
            yield from owner_countries(owner.ownership)


def control_paths(owners: tuple[Ownership, ...], countries: Collection[str],
                  threshold_percent: float) -> list[str]:
    """Why the owners are of ``countries``, one line per direct owner that is:
    ``Lion Holdings Pte (SG) 60% <- CN 100%`` reads "Lion Holdings, of SG,
    holds 60%, and is of the set because CN holds 100% of it"."""
    paths: list[str] = []
    for owner in owners:
        if owner.percent <= 0 or not _of(owner, countries, threshold_percent):
            continue
        head = f"{_label(owner)} {owner.percent:g}%"
        if owner.country in countries:
            paths.append(head)
            continue
        paths.extend(
            f"{head} <- {tail}"
            for tail in control_paths(owner.ownership, countries, threshold_percent)
        )
    return paths


def _label(owner: Ownership) -> str:
    return f"{owner.name} ({owner.country})" if owner.name else owner.country


def from_json(entries: object) -> tuple[Ownership, ...]:
    """Owners from their stored or recorded JSON form (lists of
    ``{country, percent, name?, ownership?}``), already validated once."""
    if not isinstance(entries, list):
        return ()
    return tuple(
        Ownership(
            country=str(e["country"]),
            percent=float(e["percent"]),
            name=None if e.get("name") is None else str(e["name"]),
            ownership=from_json(e.get("ownership")),
        )
        for e in entries
        if isinstance(e, dict)
    )


def to_json(owners: tuple[Ownership, ...]) -> list[dict[str, object]]:
    """Inverse of ``from_json``. An entry without a name or owners is exactly
    ``{country, percent}``, as flat records were always written."""
    out: list[dict[str, object]] = []
    for o in owners:
        entry: dict[str, object] = {"country": o.country, "percent": o.percent}
        if o.name is not None:
            entry["name"] = o.name
        if o.ownership:
            entry["ownership"] = to_json(o.ownership)
        out.append(entry)
    return out
