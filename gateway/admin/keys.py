"""Credentials: gateway API keys (``/customers/{id}/keys``, ``/keys/{id}``) and
admin-API tokens (``/tokens``). Role admin only. Secrets are in the 201
response and nowhere else."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from gateway.admin.auth import (
    ROLES,
    TOKEN_KIND,
    AdminActor,
    Role,
    admin_authenticator,
    create_admin_token,
    require_roles,
)
from gateway.admin.tokens import (
    TokenNotFound,
    list_admin_tokens,
    revoke_admin_token,
    token_view,
)
from gateway.deps import ServicesDep, SessionDep
from gateway.identity.admin_log import record_admin_action
from gateway.identity.invalidation import invalidate_key
from gateway.identity.keys import (
    KEY_KIND,
    ExpiryInPast,
    KeyNotFound,
    check_expiry,
    create_api_key,
    customer_keys,
    key_snapshot,
    revoke_api_key,
)
from gateway.identity.secrets import credential_id
from gateway.kyc.schemas import NonBlank, UtcIn
from gateway.policy.key_scope import unknown_scope_names

router = APIRouter(prefix="/admin/v1", tags=["credentials"])

Admin = Annotated[AdminActor, Depends(require_roles("admin"))]
ScopeName = Annotated[str, Field(min_length=1, max_length=128)]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: NonBlank | None = Field(default=None, max_length=256)
    expires_at: UtcIn | None = None
    # Narrowing below the customer's tier (gateway.policy.key_scope). Omitted:
    # no narrowing. An empty list would be a key for nothing: refused.
    # Names are checked against the loaded bundle (model names may hold '-', '.').
    allowed_models: list[ScopeName] | None = Field(default=None, min_length=1, max_length=100)
    allowed_capabilities: list[ScopeName] | None = Field(
        default=None, min_length=1, max_length=100
    )


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    name: NonBlank = Field(min_length=1, max_length=256)


@router.post("/customers/{customer_id}/keys", status_code=201)
async def create_key(
    customer_id: str,
    actor: Admin,
    services: ServicesDep,
    session: SessionDep,
    body: KeyCreate | None = None,
) -> dict[str, Any]:
    spec = body or KeyCreate()
    now = services.clock()
    try:
        check_expiry(spec.expires_at, now)
    except ExpiryInPast as exc:
        # FastAPI's validation shape: it is the body's field that is wrong.
        raise HTTPException(422, [_field_error("expires_at", str(exc))]) from exc
    bundle = services.policy.current
    unknown = unknown_scope_names(spec.allowed_models, spec.allowed_capabilities,
                                  bundle.model_names(), bundle.capability_names())  # fmt: skip
    if unknown:
        raise HTTPException(422, [_field_error(f, msg) for f, msg in unknown.items()])
    try:
        row, clear = await create_api_key(
            session, customer_id, actor, now, spec.expires_at, spec.name,
            _sorted(spec.allowed_models), _sorted(spec.allowed_capabilities),
        )  # fmt: skip
    except LookupError as exc:
        raise HTTPException(404, f"customer {customer_id!r} not found") from exc
    await session.commit()
    await invalidate_key(services.identifier, row.id)
    return {**key_snapshot(row), "key": clear}


@router.get("/customers/{customer_id}/keys")
async def list_keys(customer_id: str, _: Admin, session: SessionDep) -> dict[str, Any]:
    """Every key of a customer, revoked ones included: ids, names, scopes, times,
    never a secret (one page: a customer holds a handful of keys)."""
    try:
        rows = await customer_keys(session, customer_id)
    except LookupError as exc:
        raise HTTPException(404, f"customer {customer_id!r} not found") from exc
    return {"items": [key_snapshot(row) for row in rows], "next_cursor": None}


def _field_error(field: str, message: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": message, "type": "value_error"}


def _sorted(names: list[str] | None) -> list[str] | None:
    return None if names is None else sorted(set(names))


@router.delete("/keys/{key_id}")
async def revoke_key(
    key_id: str, actor: Admin, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    # The id, its ``gk_<id>`` prefix or a whole key pasted after a leak: the
    # secret is dropped before anything is looked up or echoed.
    cid = credential_id(KEY_KIND, key_id)
    if cid is None:
        raise HTTPException(404, "no such key: pass its id, gk_<id> or the whole key")
    try:
        row = await revoke_api_key(session, cid, actor, services.clock())
    except KeyNotFound as exc:
        raise HTTPException(404, f"key {cid!r} not found") from exc
    await session.commit()
    await invalidate_key(services.identifier, cid)
    return key_snapshot(row)


@router.post("/tokens", status_code=201)
async def create_token(
    body: TokenCreate, actor: Admin, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    now = services.clock()
    row, clear = await create_admin_token(session, body.role, body.name, now)
    await session.flush()
    record_admin_action(session, actor, "token.create", "admin_token", row.id, None,
                        token_view(row), now)  # fmt: skip
    await session.commit()
    return {**token_view(row), "token": clear}


@router.get("/tokens")
async def list_tokens(_actor: Admin, session: SessionDep) -> dict[str, Any]:
    """Every admin-API token, revoked ones included, as ``gateway tokens list``
    shows them: who can reach this API, never a secret. Tokens are few: one page."""
    rows = await list_admin_tokens(session)
    return {"items": [token_view(row) for row in rows], "next_cursor": None}


@router.delete("/tokens/{token_id}")
async def revoke_token(
    token_id: str, actor: Admin, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    cid = credential_id(TOKEN_KIND, token_id)  # as for keys: never echo a secret
    if cid is None:
        raise HTTPException(404, "no such token: pass its id, gat_<id> or the whole token")
    try:
        row = await revoke_admin_token(session, cid, actor, services.clock())
    except TokenNotFound as exc:
        raise HTTPException(404, f"token {cid!r} not found") from exc
    await session.commit()
    admin_authenticator(services).invalidate(cid)
    return token_view(row)


__all__ = ["ROLES", "router"]
