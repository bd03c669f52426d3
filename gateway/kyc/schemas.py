"""Pydantic shapes of the customer record (SPEC section 4) at the API edge.

Parsed once here: country codes are checked against ISO 3166 (a bad one is a
422 naming the field; ``residence`` may also be an ISO 3166-2 subdivision such
as ``UA-43``, Crimea, because sanctions programmes cover regions of a country
and the policy's ``residence_in`` matches them), times must carry an offset
and are normalised to UTC, and every time goes out as RFC 3339 with ``Z``.
Citizenships and attributes are deduplicated (first occurrence kept, order
kept); every list is capped at ``MAX_LIST_ITEMS`` entries (more is a 422
naming the field). The shapes answered with are in ``gateway.kyc.schemas_out``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from gateway.identity.ownership import MAX_DEPTH, MAX_ENTRIES
from gateway.kyc.codes import country_code, place_code

CustomerKind = Literal["individual", "organization"]
SanctionsStatus = Literal["clear", "potential_match", "confirmed_match"]
CustomerStatus = Literal["active", "suspended"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value (SQLite drops offsets) is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_input(value: datetime) -> datetime:
    """``as_utc`` for values from outside: an instant that has no UTC form in
    years 1..9999 (``9999-12-31T23:59:59-01:00``) is a ValueError naming the
    problem, which pydantic turns into a 422 / a CLI usage error, not the
    OverflowError ``astimezone`` raises (a 500)."""
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError(
            f"{value.isoformat()} is out of range: in UTC it falls outside years 1 to 9999"
        ) from None


def rfc3339(value: datetime) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")


Country = Annotated[str, AfterValidator(country_code)]
Place = Annotated[str, AfterValidator(place_code)]
"""A country or an ISO 3166-2 subdivision (where a customer lives)."""
UtcIn = Annotated[AwareDatetime, AfterValidator(utc_input)]
UtcOut = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]
Word = Annotated[str, Field(pattern=NAME_PATTERN)]


def non_blank(value: str) -> str:
    """A name must say something: one of only whitespace (Unicode's, as
    ``str.strip`` knows it) identifies nobody and screens ``clear`` with score
    0, as there is nothing to match."""
    if not value.strip():
        raise ValueError("must not be blank (whitespace only)")
    return value


NonBlank = Annotated[str, AfterValidator(non_blank)]

MAX_LIST_ITEMS = 64
"""Bound on every list in a record: no real person has more citizenships, nor
an organization more owner countries; unbounded lists were stored as sent
(20,000 entries) and copied into every cached principal and history row."""


def _first_occurrences(values: list[str]) -> list[str]:
    # Sets in meaning, lists in the record: keep the order given, drop repeats.
    return list(dict.fromkeys(values))


Countries = Annotated[
    list[Country], Field(max_length=MAX_LIST_ITEMS), AfterValidator(_first_occurrences)
]
Words = Annotated[list[Word], Field(max_length=MAX_LIST_ITEMS), AfterValidator(_first_occurrences)]


class OwnershipShare(BaseModel):
    """A direct owner; an owning entity may give its ``name`` and its own
    ``ownership`` (``gateway.identity.ownership``: the chain is traced).
    Written out without ``name``/``ownership`` when it has none, so a flat
    record reads exactly as it always did."""

    model_config = ConfigDict(extra="forbid")

    country: Country
    percent: float = Field(ge=0, le=100, allow_inf_nan=False)
    name: NonBlank | None = Field(
        default=None, min_length=1, max_length=512, exclude_if=lambda v: v is None
    )
    ownership: list[OwnershipShare] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS, exclude_if=lambda v: not v
    )


_SUM_SLACK = 0.0001


def _raw_bounds(value: Any) -> Any:
    """Depth and size, checked on the raw input before it is parsed: a tree
    deeper than ``MAX_DEPTH`` is refused with its path, not parsed level by level."""
    if not isinstance(value, list):
        return value  # pydantic says what is wrong with it
    count = 0
    stack: list[tuple[list[Any], str, int]] = [(value, "ownership", 1)]
    while stack:
        entries, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(
                f"{path}: owners more than {MAX_DEPTH} levels deep "
                f"(an ownership chain is traced at most {MAX_DEPTH} levels)"
            )
        count += len(entries)
        if count > MAX_ENTRIES:
            raise ValueError(f"more than {MAX_ENTRIES} owner entries at all levels together")
        for i, entry in enumerate(entries):
            inner = entry.get("ownership") if isinstance(entry, dict) else None
            if isinstance(inner, list) and inner:
                stack.append((inner, f"{path}[{i}].ownership", depth + 1))
    return value


def _tree_totals(shares: list[OwnershipShare], path: str = "ownership") -> None:
    """Each entity's direct owners hold at most 100% (a small slack for decimals);
    an owner of an owner holds a positive share (a 0% link carries nothing)."""
    total = sum(s.percent for s in shares)
    if total > 100 + _SUM_SLACK:
        raise ValueError(f"{path}: percentages add up to {total:g}, more than 100")
    for i, share in enumerate(shares):
        where = f"{path}[{i}]"
        if path != "ownership" and share.percent <= 0:
            raise ValueError(f"{where}.percent: an owner's owner must hold more than 0 percent")
        if share.ownership:
            _tree_totals(share.ownership, f"{where}.ownership")


def _ownership_total(shares: list[OwnershipShare] | None) -> None:
    if shares:
        _tree_totals(shares)


# Not deduplicated: shares of one country are separate holdings and add up.
Owners = Annotated[
    list[OwnershipShare], BeforeValidator(_raw_bounds), Field(max_length=MAX_LIST_ITEMS)
]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ID_PATTERN)
    name: NonBlank = Field(min_length=1, max_length=512)
    kind: CustomerKind = "individual"
    citizenships: Countries = Field(default_factory=list)
    residence: Place | None = None
    incorporated_in: Country | None = None
    ownership: Owners = Field(default_factory=list)
    kyc_level: Word = "none"
    kyc_verified_at: UtcIn | None = None
    kyc_expires_at: UtcIn | None = None
    tier: Word = "public"
    attributes: Words = Field(default_factory=list)
    sanctions_status: SanctionsStatus = "clear"
    """What the caller knows; the stored status is the stricter of this and the
    screening result (``gateway.kyc.service.create_customer``)."""
    status: CustomerStatus = "active"

    @model_validator(mode="after")
    def _check(self) -> CustomerCreate:
        _ownership_total(self.ownership)
        return self


class CustomerPatch(BaseModel):
    """Only the fields present are changed (``model_fields_set``); null clears."""

    model_config = ConfigDict(extra="forbid")

    name: NonBlank | None = Field(default=None, min_length=1, max_length=512)
    kind: CustomerKind | None = None
    citizenships: Countries | None = None
    residence: Place | None = None
    incorporated_in: Country | None = None
    ownership: Owners | None = None
    kyc_level: Word | None = None
    kyc_verified_at: UtcIn | None = None
    kyc_expires_at: UtcIn | None = None
    tier: Word | None = None
    attributes: Words | None = None
    sanctions_status: SanctionsStatus | None = None
    status: CustomerStatus | None = None
    reason: NonBlank | None = Field(default=None, max_length=1000)
    """Why the sanctions status is set to one other than ``clear``: recorded
    with the withdrawal of the customer's reviews (not a field of the record).
    Optional, as SPEC section 4's PATCH takes the record's fields alone (the
    CLI's ``withdraw-clearance`` requires ``--reason``)."""

    @model_validator(mode="after")
    def _check(self) -> CustomerPatch:
        _ownership_total(self.ownership)
        if self.reason is not None and self.sanctions_status in (None, "clear"):
            raise ValueError(
                "reason is recorded with a withdrawal of reviews: give it with a "
                "sanctions_status other than clear"
            )
        not_nullable = {"name", "kind", "citizenships", "ownership", "kyc_level", "tier",
                        "attributes", "sanctions_status", "status"}  # fmt: skip
        for name in self.model_fields_set & not_nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The record's fields to change (``reason`` is not one)."""
        return {name: getattr(self, name) for name in self.model_fields_set - {"reason"}}


class KycEvent(BaseModel):
    """A KYC vendor's verdict as the webhook receives it (after signature check)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=256)
    customer_id: str = Field(min_length=1, max_length=128)
    kyc_level: Word
    kyc_verified_at: UtcIn | None = None
    kyc_expires_at: UtcIn | None = None


def field_path(loc: Sequence[int | str]) -> str:
    """``("ownership", 0, "ownership", 1, "percent")`` as ``ownership[0].ownership[1].percent``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


_NAMED_PATH = re.compile(r"^(?:Value error, )?([a-z_]+(?:\[\d+\])*(?:\.[a-z_]+(?:\[\d+\])*)*): ")


def validation_problems(exc: ValidationError, whole: str = "input") -> list[str]:
    """``field: message`` per error, the field as ``field_path`` writes it. A
    check of the ownership tree names the entry itself in its message
    (``ownership[0].ownership: percentages add up to 110, ...``): said once."""
    lines = []
    for err in exc.errors():
        path, msg = field_path(err["loc"]), err["msg"]
        named = _NAMED_PATH.match(msg)
        if named is not None and named.group(1).startswith(path):
            lines.append(msg[named.start(1):])
        else:
            lines.append(f"{path or whole}: {msg}")
    return lines
