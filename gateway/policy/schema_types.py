"""What the policy bundle's pydantic models (``schema.py``) are built from:
the strict base model, the citation metadata listed items carry, and the
date-time field types.

Separate so that ``schema.py`` reads as the bundle's shape alone, and so that
the other strict YAML inputs (policy test cases, explain requests) take the
same date-time types without the bundle's models.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict


def _rfc3339(value: Any) -> Any:
    # Strict mode takes only datetime objects, but a quoted YAML timestamp is a
    # string: parse RFC 3339 / ISO 8601 text here. Anything else (an int such
    # as 20260613, which lax mode read as epoch seconds; a bare date) is left to
    # strict mode to reject.
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"not an RFC 3339 date-time: {value!r} (e.g. 2026-06-13T04:00:00Z)"
            ) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError(
            f"a date without a time of day: {value.isoformat()} (write the instant, "
            f"e.g. {value.isoformat()}T00:00:00Z)"
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(
            f"a number is not a date-time: {value!r} (write RFC 3339, e.g. 2026-06-13T04:00:00Z)"
        )
    return value


def _aware(value: datetime) -> datetime:
    """The instant in UTC: ``04:00:00+01:00`` and ``03:00:00Z`` are one instant, so
    they give one bundle version, and ``policy diff`` shows a moved directive as
    the move it is rather than a change of notation."""
    if value.tzinfo is None:
        raise ValueError("must carry a time zone, e.g. 2026-06-13T04:00:00Z")
    return value.astimezone(UTC)


Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]
"""A date-time: a YAML timestamp or an RFC 3339 string, never a number."""
AwareTimestamp = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_aware)]
"""A ``Timestamp`` with a time zone: a naive one cannot be compared with the clock."""


class StrictModel(BaseModel):
    """The base of every bundle model: unknown keys and wrongly typed values are errors."""

    # strict: YAML already gives real ints, bools and strings, so a value of the
    # wrong YAML type is a mistake to report, not to convert ("20" is not 20,
    # true is not 1 concurrent stream, "yes" is not true).
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False, strict=True)


class CitedModel(StrictModel):
    """Metadata keys a compliance officer uses to cite where a list comes from."""

    source: str | list[str] | None = None
    as_of: date | str | None = None
    legal_basis: str | list[str] | None = None
    notes: str | None = None
