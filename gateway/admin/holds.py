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
from pydantic import BaseModel, Field

from gateway.admin.auth import AdminActor, require_roles
from gateway.audit.retention import active_holds, add_hold, release_hold
from gateway.deps import ServicesDep

router = APIRouter(prefix="/admin/v1", tags=["audit"])
HoldRole = Annotated[AdminActor, Depends(require_roles("auditor", "compliance"))]


class HoldRequest(BaseModel):
    reason: str = Field(min_length=1, description="Why: case number, request, regulator")
    customer_id: str | None = None
    from_ts: datetime | None = Field(default=None, alias="from")
    until_ts: datetime | None = Field(default=None, alias="until")


def _view(row: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value is not None else None

    return {
        "id": row.id,
        "reason": row.reason,
        "customer_id": row.customer_id,
        "from": iso(row.from_ts),
        "until": iso(row.until_ts),
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
    }


@router.get("/audit/holds")
async def list_holds(services: ServicesDep, _actor: HoldRole) -> dict[str, Any]:
    async with services.engine.connect() as conn:
        rows = await active_holds(conn)
    return {"items": [_view(row) for row in rows], "next_cursor": None}


@router.post("/audit/holds", status_code=201)
async def place_hold(hold: HoldRequest, services: ServicesDep, actor: HoldRole) -> dict[str, Any]:
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
    return {"id": hold_id}


@router.delete("/audit/holds/{hold_id}")
async def lift_hold(hold_id: int, services: ServicesDep, _actor: HoldRole) -> dict[str, Any]:
    if not await release_hold(services.engine, hold_id, services.clock()):
        raise HTTPException(404, f"no active hold {hold_id}")
    return {"id": hold_id, "released": True}
