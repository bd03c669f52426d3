"""``/admin/v1/audit/holds``: legal holds that block retention pruning.

An auditor (or compliance officer) answering a subpoena or an investigation
places a hold on a customer's records, a time range, or both; ``gateway audit
prune`` never deletes a segment a hold covers. Holds are released, never
deleted, so the hold history itself stays on record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from gateway.admin.auth import AdminActor, require_roles
from gateway.audit.filters import FilterError, parse_time
from gateway.audit.retention import active_holds, add_hold, get_hold, release_hold
from gateway.deps import ServicesDep
from gateway.kyc.schemas import ID_PATTERN, rfc3339

router = APIRouter(prefix="/admin/v1", tags=["audit"])
HoldRole = Annotated[AdminActor, Depends(require_roles("auditor", "compliance"))]


def _rfc3339(value: object) -> datetime:
    """The decision filters' rule (``audit/filters.py``): RFC 3339 with ``Z`` or an
    offset; a naive time, a bare date or unix seconds is refused, not guessed."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time with a zone, e.g. 2026-06-14T00:00:00Z")
    try:
        return parse_time(value, "time")
    except FilterError as exc:
        raise ValueError(exc.message) from None


HoldTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class HoldRequest(BaseModel):
    """Strict, like the customer record: a misspelt key (``from_ts``) is a 422, not a
    hold silently widened to every time; times need a zone (SPEC: RFC 3339 UTC)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, description="Why: case number, request, regulator")
    customer_id: str | None = Field(default=None, pattern=ID_PATTERN)
    from_ts: HoldTime | None = Field(default=None, alias="from")
    until_ts: HoldTime | None = Field(default=None, alias="until")


def _view(row: Any) -> dict[str, Any]:
    """A hold as the API shows it: times RFC 3339 UTC with ``Z`` (SQLite hands them
    back without a zone; they are UTC)."""
    return {
        "id": row.id,
        "reason": row.reason,
        "customer_id": row.customer_id,
        "from": rfc3339(row.from_ts) if row.from_ts is not None else None,
        "until": rfc3339(row.until_ts) if row.until_ts is not None else None,
        "created_by": row.created_by,
        "created_at": rfc3339(row.created_at),
    }


@router.get("/audit/holds")
async def list_holds(services: ServicesDep, _actor: HoldRole) -> dict[str, Any]:
    async with services.engine.connect() as conn:
        rows = await active_holds(conn)
    return {"items": [_view(row) for row in rows], "next_cursor": None}


@router.post("/audit/holds", status_code=201)
async def place_hold(hold: HoldRequest, services: ServicesDep, actor: HoldRole) -> dict[str, Any]:
    """Answers 201 with the stored hold, as ``POST /customers`` does with its record."""
    if hold.from_ts and hold.until_ts and hold.until_ts <= hold.from_ts:
        raise HTTPException(422, "until must be after from")
    hold_id = await add_hold(
        services.engine,
        hold.reason,
        f"{actor.role}:{actor.name}",
        services.clock(),
        hold.customer_id,
        hold.from_ts,
        hold.until_ts,
    )
    async with services.engine.connect() as conn:
        return _view(await get_hold(conn, hold_id))


@router.delete("/audit/holds/{hold_id}")
async def lift_hold(hold_id: int, services: ServicesDep, _actor: HoldRole) -> dict[str, Any]:
    if not await release_hold(services.engine, hold_id, services.clock()):
        raise HTTPException(404, f"no active hold {hold_id}")
    return {"id": hold_id, "released": True}
