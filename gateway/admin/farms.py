"""``GET /admin/v1/audit/farms``: the account-farm report (``gateway.audit.farms``).

Role: auditor (admin passes), like every route that reads the decision log
(SPEC section 4): the report names client addresses and prompt hashes taken
from it. Compliance officers act on its findings through the customer routes;
they do not read the log itself. Read-only; like the other admin reads it
writes no ``admin_actions`` row (that log holds changes).

The window is ``from``/``to`` (RFC 3339 with a zone, validated as
``/decisions`` does: 422 naming the parameter); without ``from`` it is the 7
days before ``to`` (default now). On PostgreSQL the serving process bounds
every statement by ``GATEWAY_DATABASE_TIMEOUT_SECONDS``: a window too large to
aggregate in that time is a 503 saying so (the CLI has no such bound).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from gateway.admin.auth import AdminActor, require_roles
from gateway.audit.filters import FilterError, parse_time
from gateway.deps import ServicesDep

router = APIRouter(prefix="/admin/v1", tags=["audit"])
Auditor = Annotated[AdminActor, Depends(require_roles("auditor"))]
MAX_PROMPT_CUSTOMERS = 200
"""The highest ``max_prompt_customers`` taken here: pairs are formed per shared
prompt, up to n*(n-1)/2 of them, in the serving process; a bound of a million
let one query build every pair of a common prompt's customers (5,000
customers: 12.5 million pairs). ``gateway audit farms``, a process of its own,
takes any."""
DEFAULT_WINDOW = timedelta(days=7)
DEFAULT_MIN_ACCOUNTS = 3
"""``gateway.audit.farms.DEFAULT_MIN_ACCOUNTS`` (a test checks they agree)."""


def _invalid(param: str, message: str, value: Any) -> RequestValidationError:
    # The shape and status of FastAPI's own query errors (422, detail[].loc).
    return RequestValidationError([{"type": "value_error", "loc": ("query", param),
                                    "msg": message, "input": value}])


@router.get("/audit/farms")
async def farms_route(
    services: ServicesDep,
    _actor: Auditor,
    from_: Annotated[str | None, Query(
        alias="from", description="RFC 3339 time with a zone (inclusive); "
                                  "default 7 days before `to`")] = None,
    to: Annotated[str | None, Query(
        description="RFC 3339 time with a zone (exclusive); default now")] = None,
    min_accounts: Annotated[int, Query(ge=2)] = DEFAULT_MIN_ACCOUNTS,
    capability: Annotated[list[str] | None, Query(
        description="Watched capabilities (repeat the parameter); default coding, agentic, traces")]
    = None,
    max_ip_customers: Annotated[int, Query(ge=2)] = 50,
    max_prompt_customers: Annotated[int, Query(ge=2, le=MAX_PROMPT_CUSTOMERS)] = 10,
    min_shared_prompts: Annotated[int, Query(ge=1)] = 2,
    include_weak: bool = False,
) -> dict[str, Any]:
    """Groups of customers that look like one actor: shared addresses, networks, prompts."""
    # Imported here: every serving worker loads this router, few ever run the
    # report (~220 KiB of modules per worker otherwise).
    from gateway.audit.farms import farm_options, farm_report

    try:
        end = parse_time(to, "to") if to is not None else services.clock()
        start = parse_time(from_, "from") if from_ is not None else end - DEFAULT_WINDOW
    except FilterError as exc:
        raise _invalid(exc.param, exc.message, exc.value) from None
    if end <= start:
        raise _invalid("to", f"must be after 'from' ({from_})", to)
    try:
        options = farm_options(
            services.settings, start, end, min_accounts=min_accounts, capabilities=capability,
            include_weak=include_weak, max_ip_customers=max_ip_customers,
            max_prompt_customers=max_prompt_customers,
            min_shared_prompts=min_shared_prompts)  # fmt: skip
    except ValueError as exc:
        raise _invalid("capability", str(exc), capability) from None
    try:
        return await farm_report(services.engine, options)
    except TimeoutError:
        # Not "the database cannot be reached" (what a bare TimeoutError, an
        # OSError, would be answered with): it answered, too slowly for this window.
        raise HTTPException(503, "the report did not finish within "
                            "GATEWAY_DATABASE_TIMEOUT_SECONDS; narrow the window or run "
                            "`gateway audit farms`", {"retry-after": "1"}) from None
