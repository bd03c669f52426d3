"""The admin action log: every admin write adds one row in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import AdminActor
from gateway.identity.tables import AdminAction


def record_admin_action(
    session: AsyncSession,
    actor: AdminActor,
    action: str,
    target_type: str,
    target_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    at: datetime,
) -> None:
    """Add the row to ``session``; it commits (or rolls back) with the change itself."""
    session.add(
        AdminAction(
            at=at,
            actor=actor.name,
            actor_role=actor.role,
            token_id=actor.token_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            before=before,
            after=after,
        )
    )
