"""``/admin/v1/admin-actions``: who changed what, for auditors.

Every admin write adds one ``admin_actions`` row in the same transaction as
the change: customers (API, CLI, KYC webhook verdicts), API keys, admin
tokens, and policy reloads through the API; so does each policy dry run over
HTTP (``policy.test``, ``policy.impact``: which candidate, what it found,
``gateway.admin.policy_runs``) and ``policy.explain``. A row names the actor and the
token it used, the action, the target, and the target before and after
(never a secret or its hash). The decision log says what the gateway decided;
this log says who set up the facts it decided on.

Oldest first, keyset cursor on the row id (``{"items", "next_cursor"}`` like
every list route); ``from``/``to`` are refused as ``GET /decisions`` refuses
them (422 naming the parameter). Role: auditor (admin passes).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select

from gateway.admin.auth import AdminActor, require_roles
from gateway.admin.query_errors import TimeRange
from gateway.deps import SessionDep
from gateway.identity.tables import AdminAction
from gateway.kyc.listing import MAX_PAGE, decode_cursor, encode_cursor
from gateway.kyc.schemas import UtcOut, as_utc

router = APIRouter(prefix="/admin/v1", tags=["audit"])
Auditor = Annotated[AdminActor, Depends(require_roles("auditor"))]


class AdminActionOut(BaseModel):
    id: int
    at: UtcOut
    actor: str
    actor_role: str
    token_id: str | None
    """The admin token used (None: the bootstrap token or the CLI)."""
    action: str
    """e.g. ``customer.update``, ``key.revoke``, ``token.create``, ``policy.reload``,
    ``policy.test``, ``policy.impact``."""
    target_type: str
    """``customer``, ``api_key``, ``admin_token``, ``policy``, ``policy_explain``
    or ``policy_run`` (a test or impact run; ``target_id`` is the candidate's
    version, ``invalid`` when it did not load)."""
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AdminActionPage(BaseModel):
    items: list[AdminActionOut]
    next_cursor: str | None


@router.get("/admin-actions", response_model=AdminActionPage)
async def list_admin_actions(
    session: SessionDep,
    _auditor: Auditor,
    window: TimeRange,
    target_type: str | None = None,
    target_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AdminActionPage:
    from_, to = window
    query = select(AdminAction).order_by(AdminAction.id).limit(limit + 1)
    for column, value in ((AdminAction.target_type, target_type),
                          (AdminAction.target_id, target_id),
                          (AdminAction.actor, actor), (AdminAction.action, action)):
        if value is not None:
            query = query.where(column == value)
    if from_ is not None:
        query = query.where(AdminAction.at >= from_)
    if to is not None:
        query = query.where(AdminAction.at < to)
    if cursor:
        try:
            after = int(decode_cursor(cursor))
        except ValueError as exc:
            raise HTTPException(400, "invalid cursor") from exc
        query = query.where(AdminAction.id > after)
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        AdminActionOut(id=r.id, at=as_utc(r.at), actor=r.actor, actor_role=r.actor_role,
                       token_id=r.token_id, action=r.action, target_type=r.target_type,
                       target_id=r.target_id, before=r.before, after=r.after)
        for r in rows
    ]  # fmt: skip
    return AdminActionPage(items=items, next_cursor=encode_cursor(rows[-1].id) if more else None)
