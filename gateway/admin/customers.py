"""``/admin/v1/customers``: KYC customer records (roles admin, compliance).

Every write runs in one transaction with its history and admin-action rows,
then drops the customer from the identify cache. The sanctions screener is
read from ``services.extras["screener"]`` (a ``gateway.kyc.screening.Screener``
or absent: then names are not screened and a warning is logged). ``kyc_level``
and ``tier`` written must be names of the policy bundle in force
(``gateway.kyc.vocabulary``): anything else is a 422 listing the allowed ones.
A ``sanctions_status`` given on create is kept unless screening finds worse
(the stricter of the two is stored); only a PATCH can lower it. A
``kyc_verified_at`` in the future is a 422 (``gateway.kyc.verified_at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from gateway.admin.auth import AdminActor, require_roles
from gateway.deps import ServicesDep, SessionDep
from gateway.identity.invalidation import invalidate_customer
from gateway.kyc import service
from gateway.kyc.schemas import (
    CustomerCreate,
    CustomerPatch,
    CustomerStatus,
    SanctionsStatus,
    rfc3339,
)
from gateway.kyc.schemas_out import CustomerOut, CustomerPage, HistoryPage
from gateway.kyc.screening import Screener
from gateway.kyc.verified_at import FIELD as VERIFIED_AT
from gateway.kyc.verified_at import future_verification
from gateway.kyc.vocabulary import Vocabulary, unknown_names, vocabulary
from gateway.services import Services

router = APIRouter(prefix="/admin/v1", tags=["customers"])

Actor = Annotated[AdminActor, Depends(require_roles("compliance"))]
Limit = Annotated[int, Query(ge=1, le=service.MAX_PAGE)]
SCREENER_KEY = "screener"


def screener_of(services: Services) -> Screener | None:
    found = services.extras.get(SCREENER_KEY)
    return found if isinstance(found, Screener) else None


def vocabulary_of(services: Services) -> Vocabulary:
    """The KYC levels and tiers of the bundle in force now."""
    bundle = services.policy.current
    return vocabulary(bundle.kyc_levels, bundle.tiers)


def check_names(values: Mapping[str, object], services: Services) -> None:
    """422 in FastAPI's validation shape, one entry per field the bundle does not know."""
    unknown = unknown_names(values, vocabulary_of(services))
    if unknown:
        raise HTTPException(422, [
            {"loc": ["body", u.field], "msg": u.message, "type": "value_error", "input": u.value}
            for u in unknown
        ])  # fmt: skip


def check_verified_at(verified_at: datetime | None, services: Services) -> None:
    """422 in FastAPI's validation shape for a verification dated in the future."""
    problem = future_verification(
        verified_at, services.clock(), services.settings.kyc_webhook_tolerance_seconds
    )
    if problem is not None and verified_at is not None:
        raise HTTPException(422, [{"loc": ["body", VERIFIED_AT], "msg": problem,
                                   "type": "value_error", "input": rfc3339(verified_at)}])


@router.post("/customers", status_code=201, response_model=CustomerOut)
async def create_customer(
    body: CustomerCreate, actor: Actor, services: ServicesDep, session: SessionDep
) -> CustomerOut:
    check_names(body.model_dump(include={"kyc_level", "tier"}), services)
    check_verified_at(body.kyc_verified_at, services)
    try:
        row = await service.create_customer(
            session, body, actor, screener_of(services), services.clock()
        )
    except service.CustomerExists as exc:
        raise HTTPException(409, f"customer {exc} already exists") from exc
    await session.commit()
    await invalidate_customer(services.identifier, row.id)
    return service.to_out(row)


@router.get("/customers", response_model=CustomerPage)
async def list_customers(
    actor: Actor,
    session: SessionDep,
    cursor: str | None = None,
    limit: Limit = 100,
    status: CustomerStatus | None = None,
    sanctions_status: SanctionsStatus | None = None,
) -> CustomerPage:
    try:
        rows, next_cursor = await service.list_customers(
            session, cursor, limit, status, sanctions_status
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    return CustomerPage(items=[service.to_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/customers/{customer_id}", response_model=CustomerOut)
async def get_customer(customer_id: str, actor: Actor, session: SessionDep) -> CustomerOut:
    try:
        return service.to_out(await service.get_customer(session, customer_id))
    except service.CustomerNotFound as exc:
        raise HTTPException(404, f"customer {customer_id!r} not found") from exc


@router.patch("/customers/{customer_id}", response_model=CustomerOut)
async def patch_customer(
    customer_id: str,
    body: CustomerPatch,
    actor: Actor,
    services: ServicesDep,
    session: SessionDep,
) -> CustomerOut:
    check_names(body.changes(), services)
    check_verified_at(body.kyc_verified_at, services)
    try:
        row = await service.update_customer(
            session, customer_id, body, actor, screener_of(services), services.clock()
        )
    except service.CustomerNotFound as exc:
        raise HTTPException(404, f"customer {customer_id!r} not found") from exc
    await session.commit()
    await invalidate_customer(services.identifier, customer_id)
    return service.to_out(row)


@router.get("/customers/{customer_id}/history", response_model=HistoryPage)
async def customer_history(
    customer_id: str,
    actor: Actor,
    session: SessionDep,
    cursor: str | None = None,
    limit: Limit = 100,
) -> HistoryPage:
    try:
        await service.get_customer(session, customer_id)
        items, next_cursor = await service.list_history(session, customer_id, cursor, limit)
    except service.CustomerNotFound as exc:
        raise HTTPException(404, f"customer {customer_id!r} not found") from exc
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    return HistoryPage(items=items, next_cursor=next_cursor)
