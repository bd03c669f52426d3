"""Pydantic shapes the admin API and the CLI answer with: a customer record as
read back (with its last screening), a history row, and their pages.

Separate from ``gateway.kyc.schemas``, which parses what callers send (and
holds the field types both use): these are only ever built from stored rows
(``gateway.kyc.records``, ``gateway.kyc.listing``), never validated from
outside, and every time in them goes out as RFC 3339 with ``Z`` (``UtcOut``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.kyc.schemas import (
    CustomerKind,
    CustomerStatus,
    OwnershipShare,
    SanctionsStatus,
    UtcOut,
)


class ScreeningHit(BaseModel):
    """One of the customer's screened names (its own or an owner's) matching
    one listed name, at or above the threshold."""

    screened_name: str
    listed_name: str | None
    """None: nothing of the screened name was left to compare (held, fail closed)."""
    score: float
    source: str | None
    reviewed: bool
    """A compliance review already cleared this very pair: it holds nobody."""


class Screening(BaseModel):
    list_version: str | None
    best_match: str | None
    """The strongest hit's listed name (or the closest name when none is a hit)."""
    score: float | None
    screened_at: UtcOut | None
    threshold: float | None = None
    """The match threshold the last screening used (None: not kept then)."""
    hits: list[ScreeningHit] = []
    """Every hit of the last screening; a ``clear`` review clears each of them."""


class CustomerOut(BaseModel):
    id: str
    name: str
    kind: CustomerKind
    citizenships: list[str]
    residence: str | None
    incorporated_in: str | None
    ownership: list[OwnershipShare]
    kyc_level: str
    kyc_verified_at: UtcOut | None
    kyc_expires_at: UtcOut | None
    tier: str
    attributes: list[str]
    sanctions_status: SanctionsStatus
    screening: Screening
    status: CustomerStatus
    created_at: UtcOut
    updated_at: UtcOut


class HistoryOut(BaseModel):
    id: int
    customer_id: str
    at: UtcOut
    actor: str
    action: str
    changes: dict[str, Any]


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None


class HistoryPage(BaseModel):
    items: list[HistoryOut]
    next_cursor: str | None
