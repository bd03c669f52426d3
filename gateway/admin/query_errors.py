"""Filter refusals as FastAPI's own query errors, for every admin list route.

``gateway.audit.filters`` validates what the CLI validates too, and names the
refused parameter; here that becomes the 422 with ``detail[].loc`` that
FastAPI answers for any other bad query parameter, so a client handles one
error shape whichever check refused it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from difflib import get_close_matches
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError

from gateway.audit.filters import FilterError, time_range


def as_query_error(exc: FilterError) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", exc.param),
                                    "msg": exc.message, "input": exc.value}])  # fmt: skip


def known_params(*accepted: str) -> Callable[[Request], None]:
    """Dependency: a 422 naming any query parameter the route does not take.

    FastAPI ignores unknown parameters, and for a filter that is the worst
    answer: ``?rule=X`` (the CLI's ``--rule`` is ``rule_id`` here) listed and
    exported every decision as if they were X's refusals.
    """
    allowed = frozenset(accepted)

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - allowed)
        if not unknown:
            return
        errors = []
        for name in unknown:
            close = get_close_matches(name, allowed, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            errors.append({"type": "value_error", "loc": ("query", name),
                           "msg": f"unknown query parameter; {hint}this route takes: "
                                  f"{', '.join(sorted(allowed))}",
                           "input": request.query_params[name]})  # fmt: skip
        raise RequestValidationError(errors)

    return check


def query_time_range(
    from_: Annotated[str | None, Query(
        alias="from", description="RFC 3339 time with a zone (inclusive)")] = None,
    to: Annotated[str | None, Query(
        description="RFC 3339 time with a zone (exclusive)")] = None,
) -> tuple[datetime | None, datetime | None]:
    """Dependency: ``from``/``to`` as aware UTC datetimes, or a 422 naming the parameter.

    Taken as text: FastAPI's own datetime parsing accepts naive times (read
    as UTC), bare dates and unix seconds, which the decision log refuses.
    """
    try:
        return time_range(from_, to)
    except FilterError as exc:
        raise as_query_error(exc) from None


TimeRange = Annotated[tuple[datetime | None, datetime | None], Depends(query_time_range)]
