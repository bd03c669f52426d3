"""Gateway API keys: ``gk_<id>_<secret>``.

Minting and revoking (admin API and CLI), and the batched ``last_used_at``
writer: the hot path only notes the use in memory; a background task flushes
the newest timestamp per key every few seconds in one transaction, so a busy
key costs one UPDATE per flush interval, not one per request.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminActor
from gateway.identity import secrets as creds
from gateway.identity.admin_log import record_admin_action
from gateway.identity.tables import ApiKey
from gateway.kyc.schemas import as_utc, rfc3339
from gateway.kyc.tables import Customer
from gateway.ops.background import BackgroundTask, every

log = logging.getLogger(__name__)

KEY_KIND = "gk"


class KeyNotFound(LookupError):
    pass


class ExpiryInPast(ValueError):
    """A new key's ``expires_at`` is not after its creation: it would never work."""


def check_expiry(expires_at: datetime | None, now: datetime) -> None:
    """Refuse an expiry at or before ``now`` (a typo'd year, a stale script):
    the key would be shown once and refused on first use."""
    if expires_at is not None and as_utc(expires_at) <= as_utc(now):
        raise ExpiryInPast(
            f"{rfc3339(expires_at)} is in the past (it is now {rfc3339(now)}): "
            "the key would never work"
        )


def key_snapshot(row: ApiKey) -> dict[str, Any]:
    """JSON-able key metadata (never the hash) for responses and the admin log."""

    def t(value: datetime | None) -> str | None:
        return None if value is None else rfc3339(value)

    return {
        "id": row.id,
        "customer_id": row.customer_id,
        # From the id, not the column: a row written by an older replica during
        # a rolling deploy may still hold four characters of the secret there.
        "prefix": f"{KEY_KIND}_{row.id}",
        "name": row.name,
        "created_at": t(row.created_at),
        "expires_at": t(row.expires_at),
        "revoked_at": t(row.revoked_at),
        "last_used_at": t(row.last_used_at),
        "allowed_models": row.allowed_models,
        "allowed_capabilities": row.allowed_capabilities,
    }


async def create_api_key(
    session: AsyncSession,
    customer_id: str,
    actor: AdminActor,
    now: datetime,
    expires_at: datetime | None = None,
    name: str | None = None,
    allowed_models: list[str] | None = None,
    allowed_capabilities: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """Add a key for an existing customer; returns the row and the clear key (show once).

    ``allowed_models`` / ``allowed_capabilities`` narrow the key below the
    customer's tier (``gateway.policy.key_scope``); the caller has checked the
    names against the policy bundle."""
    check_expiry(expires_at, now)
    if await session.get(Customer, customer_id) is None:
        raise LookupError(customer_id)
    minted = creds.mint(KEY_KIND)
    row = ApiKey(
        id=minted.id,
        customer_id=customer_id,
        secret_salt=minted.salt,
        secret_hash=minted.hash,
        prefix=minted.prefix,
        name=name,
        created_at=now,
        expires_at=None if expires_at is None else as_utc(expires_at),
        allowed_models=allowed_models,
        allowed_capabilities=allowed_capabilities,
    )
    session.add(row)
    await session.flush()
    record_admin_action(
        session, actor, "key.create", "api_key", row.id, None, key_snapshot(row), now
    )
    return row, minted.clear


async def customer_keys(session: AsyncSession, customer_id: str) -> list[ApiKey]:
    """A customer's keys, oldest first (LookupError: no such customer)."""
    if await session.get(Customer, customer_id) is None:
        raise LookupError(customer_id)
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.customer_id == customer_id).order_by(ApiKey.created_at,
                                                                          ApiKey.id)
    )
    return list(rows)


async def revoke_api_key(
    session: AsyncSession, key_id: str, actor: AdminActor, now: datetime
) -> ApiKey:
    """Revoke (idempotently: an already revoked key keeps its first revocation time)."""
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise KeyNotFound(key_id)
    before = key_snapshot(row)
    if row.revoked_at is None:
        row.revoked_at = now
    await session.flush()
    record_admin_action(
        session, actor, "key.revoke", "api_key", row.id, before, key_snapshot(row), now
    )
    return row


class LastUsedTracker:
    """Collects key uses in memory and writes them in batches."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval_seconds: float) -> None:
        self._sessions = sessions
        self._interval = interval_seconds
        self._pending: dict[str, datetime] = {}
        self._task = BackgroundTask("api-key-last-used")

    def mark(self, key_id: str, at: datetime) -> None:
        self._pending[key_id] = at

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write what has accumulated; on a DB error the uses are kept for the next try."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        try:
            async with self._sessions() as session, session.begin():
                for key_id, at in batch.items():
                    await session.execute(
                        update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at)
                    )
        except (SQLAlchemyError, OSError) as exc:  # asyncpg's connect errors are OSErrors
            log.warning("last_used_at flush failed, will retry: %s", exc)
            for key_id, at in batch.items():
                self._pending.setdefault(key_id, at)
            return 0
        return len(batch)

    def start(self) -> None:
        self._task.start(lambda: every(self._interval, self.flush, log, "last_used_at flush"))

    async def stop(self) -> None:
        await self._task.stop()
        await self.flush()
