"""Filter refusals as FastAPI's own query errors, for every admin list route.

``gateway.audit.filters`` validates what the CLI validates too, and names the
refused parameter; here that becomes the 422 with ``detail[].loc`` that
FastAPI answers for any other bad query parameter, so a client handles one
error shape whichever check refused it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError

from gateway.audit.filters import FilterError, time_range


def as_query_error(exc: FilterError) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", exc.param),
                                    "msg": exc.message, "input": exc.value}])  # fmt: skip


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
