"""Pydantic shapes of the customer record (SPEC section 4) at the API edge.

Parsed once here: country codes are checked against ISO 3166 (a bad one is a
422 naming the field; ``residence`` may also be an ISO 3166-2 subdivision such
as ``UA-43``, Crimea, because sanctions programmes cover regions of a country
and the policy's ``residence_in`` matches them), times must carry an offset
and are normalised to UTC, and every time goes out as RFC 3339 with ``Z``.
Citizenships and attributes are deduplicated (first occurrence kept, order
kept); every list is capped at ``MAX_LIST_ITEMS`` entries (more is a 422
naming the field).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

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
    model_config = ConfigDict(extra="forbid")

    country: Country
    percent: float = Field(ge=0, le=100, allow_inf_nan=False)


def _ownership_total(shares: list[OwnershipShare] | None) -> None:
    if shares and sum(s.percent for s in shares) > 100.0001:
        raise ValueError("ownership percentages add up to more than 100")


# Not deduplicated: shares of one country are separate holdings and add up.
Owners = Annotated[list[OwnershipShare], Field(max_length=MAX_LIST_ITEMS)]


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

    @model_validator(mode="after")
    def _check(self) -> CustomerPatch:
        _ownership_total(self.ownership)
        not_nullable = {"name", "kind", "citizenships", "ownership", "kyc_level", "tier",
                        "attributes", "sanctions_status", "status"}  # fmt: skip
        for name in self.model_fields_set & not_nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class Screening(BaseModel):
    list_version: str | None
    best_match: str | None
    score: float | None
    screened_at: UtcOut | None


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


class KycEvent(BaseModel):
    """A KYC vendor's verdict as the webhook receives it (after signature check)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=256)
    customer_id: str = Field(min_length=1, max_length=128)
    kyc_level: Word
    kyc_verified_at: UtcIn | None = None
    kyc_expires_at: UtcIn | None = None


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None


class HistoryPage(BaseModel):
    items: list[HistoryOut]
    next_cursor: str | None
