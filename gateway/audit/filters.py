"""Decision-log filters from user input: one validation for the HTTP API and the CLI.

``GET /admin/v1/decisions`` (and ``/decisions/export``) and ``gateway audit
export`` take the same filters (and ``GET /admin/v1/admin-actions`` the same
``from`` and ``to``) and must refuse the same mistakes: a time that
is not RFC 3339 with a zone (SPEC section 4: times are RFC 3339 UTC), an
origin that is no ISO 3166 country or region code (``XX`` is shaped right but
is no code: the tables of ``kyc/codes.py`` decide), a range that ends before
it starts. Each refusal names the parameter (``from``,
``to``, ``origin``, ...); the API answers it as a 422 like its other query
errors, the CLI as a usage error on ``--from``, ``--to``, ``--origin`` (exit 2).

Why zoned times only: a naive time means a different instant on every
auditor's machine, and comparing it with a zoned one is a TypeError; a bare
date or unix seconds is a guess at what was meant.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from gateway.audit.query import DecisionFilters
from gateway.kyc.codes import country_code, country_or_region
from gateway.kyc.schemas import utc_input

ORIGIN = re.compile(r"[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?")
"""An ISO 3166-1 alpha-2 country (``DE``) or an ISO 3166-2 region (``UA-43``)."""

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


class FilterError(ValueError):
    """A filter value refused; ``param`` is the query parameter's name (``from``, ``to``, …)."""

    def __init__(self, param: str, message: str, value: str | None) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message
        self.value = value


def parse_time(value: str, param: str) -> datetime:
    """An RFC 3339 time with ``Z`` or an offset, as an aware UTC datetime."""
    if _RFC3339.fullmatch(value) is None:
        raise FilterError(param, "not an RFC 3339 time with a zone, e.g. "
                          f"2026-06-14T00:00:00Z: {value!r}", value)
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:  # shaped right, but e.g. month 13
        raise FilterError(param, f"not a valid time: {value!r} ({exc})", value) from None
    try:
        return utc_input(parsed)  # e.g. 9999-12-31T23:59:59-01:00 has no UTC form
    except ValueError as exc:
        raise FilterError(param, str(exc), value) from None


def time_range(from_: str | None, to: str | None) -> tuple[datetime | None, datetime | None]:
    """``from`` (inclusive) and ``to`` (exclusive) parsed; ``to`` must come after ``from``."""
    from_ts = parse_time(from_, "from") if from_ is not None else None
    to_ts = parse_time(to, "to") if to is not None else None
    if from_ts is not None and to_ts is not None and to_ts <= from_ts:
        raise FilterError("to", f"must be after 'from' ({from_}): {to!r}", to)
    return from_ts, to_ts


def _origin(value: str) -> str:
    """A code the ISO 3166 tables know (``kyc/codes.py``), upper-cased: ``XX`` has the
    right shape but would answer an empty page that looks like "no such requests"."""
    try:
        if ORIGIN.fullmatch(value) is None:
            raise ValueError(value)
        return country_or_region(value)
    except ValueError:
        raise FilterError("origin", "not an ISO 3166-1 alpha-2 country or ISO 3166-2 region "
                          f"code (e.g. US, UA-43): {value!r}", value) from None


def _citizenship(value: str) -> str:
    """An ISO 3166-1 alpha-2 country, upper-cased, as citizenships are stored."""
    try:
        if len(value) != 2 or not value.isalpha():
            raise ValueError(value)
        return country_code(value)
    except ValueError:
        raise FilterError("citizenship", "not an ISO 3166-1 alpha-2 country code "
                          f"(e.g. IR): {value!r}", value) from None


def decision_filters(
    *,
    customer_id: str | None = None,
    decision: Literal["allow", "deny"] | None = None,
    rule_id: str | None = None,
    model: str | None = None,
    origin: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    report_rule_id: str | None = None,
    citizenship: str | None = None,
) -> DecisionFilters:
    """Validated filters; raises FilterError naming the first parameter refused."""
    if origin is not None:
        origin = _origin(origin)
    if citizenship is not None:
        citizenship = _citizenship(citizenship)
    from_ts, to_ts = time_range(from_, to)
    return DecisionFilters(customer_id=customer_id, decision=decision, rule_id=rule_id,
                           report_rule_id=report_rule_id, model=model, origin=origin,
                           citizenship=citizenship, from_ts=from_ts, to_ts=to_ts)
