"""Admin-API token rows: their public view, listing and revocation.

One implementation for the admin API's ``DELETE /tokens/{id}`` and the CLI's
``gateway tokens list|revoke``, so both record the same ``token.revoke`` row in
``admin_actions`` (which the change feed turns into a dropped cache entry in
every running gateway process).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import AdminActor
from gateway.identity.admin_log import record_admin_action
from gateway.identity.tables import AdminToken
from gateway.kyc.schemas import rfc3339


class TokenNotFound(LookupError):
    pass


def token_view(row: AdminToken) -> dict[str, Any]:
    """What may be shown of a token: never its secret, salt or hash."""
    return {
        "id": row.id,
        "role": row.role,
        "name": row.name,
        "created_at": rfc3339(row.created_at),
        "revoked_at": None if row.revoked_at is None else rfc3339(row.revoked_at),
    }


async def list_admin_tokens(session: AsyncSession) -> list[AdminToken]:
    """Every token, revoked ones included (a handful: no paging), oldest first."""
    rows = await session.scalars(select(AdminToken).order_by(AdminToken.created_at, AdminToken.id))
    return list(rows)


async def revoke_admin_token(
    session: AsyncSession, token_id: str, actor: AdminActor, now: datetime
) -> AdminToken:
    """Revoke (idempotently: a revoked token keeps its first revocation time); the
    caller commits, then drops the token from its own process's cache."""
    row = await session.get(AdminToken, token_id)
    if row is None:
        raise TokenNotFound(token_id)
    before = token_view(row)
    if row.revoked_at is None:
        row.revoked_at = now
    record_admin_action(session, actor, "token.revoke", "admin_token", row.id, before,
                        token_view(row), now)  # fmt: skip
    return row
