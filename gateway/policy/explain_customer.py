"""A customer record and its scoped keys, for ``policy explain`` (CLI and admin API).

Read-only. The principal is built as the identify stage builds it
(``identity.store.principal_from``) without a key; each live key with a scope
is then judged on its own (``key_scope_refusal``), since the request the
officer asks about may arrive on any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.identity.principal import Principal
from gateway.identity.screening_summary import ListInForce
from gateway.identity.store import principal_from
from gateway.identity.tables import ApiKey
from gateway.kyc.schemas import as_utc
from gateway.kyc.tables import Customer
from gateway.policy.facts import RequestFacts
from gateway.policy.key_scope import key_scope_refusal

NO_KEY_NOTE = (
    "explain names no API key (--key or key_id names one): a key limited to models "
    "or capabilities can refuse further (rule id key-scope), after the deny rules"
)


@dataclass(frozen=True, slots=True)
class ScopedKey:
    key_id: str
    name: str | None
    allowed_models: tuple[str, ...] | None
    allowed_capabilities: tuple[str, ...] | None
    principal: Principal
    """The customer as seen through this key (its scope set)."""


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    principal: Principal
    keys: tuple[ScopedKey, ...]
    """Keys with a scope, neither revoked nor expired when read."""


async def load_customer(
    session: AsyncSession, customer_id: str, now: datetime, in_force: ListInForce | None = None
) -> CustomerRecord | None:
    """``in_force``: the serving process's sanctions list, so that a customer it
    holds for a rescreen is explained as held (``screening_summary``)."""
    row = await session.get(Customer, customer_id)
    if row is None:
        return None
    keys = (
        await session.execute(
            select(ApiKey).where(ApiKey.customer_id == customer_id).order_by(ApiKey.id)
        )
    ).scalars()
    scoped = tuple(
        ScopedKey(
            key.id,
            key.name,
            None if key.allowed_models is None else tuple(key.allowed_models),
            None if key.allowed_capabilities is None else tuple(key.allowed_capabilities),
            principal_from(row, key.id, "explain", key, in_force),
        )
        for key in keys
        if key.revoked_at is None
        and (key.expires_at is None or as_utc(key.expires_at) > now)
        and (key.allowed_models is not None or key.allowed_capabilities is not None)
    )
    return CustomerRecord(principal_from(row, None, "explain", None, in_force), scoped)


def key_scope_document(keys: tuple[ScopedKey, ...], facts: RequestFacts) -> dict[str, Any]:
    """The note, and for each scoped key whether its scope would refuse this request."""
    return {
        "note": NO_KEY_NOTE,
        "key": None,
        "keys": [
            {
                "key_id": k.key_id, "name": k.name,
                "allowed_models": None if k.allowed_models is None else sorted(k.allowed_models),
                "allowed_capabilities": (None if k.allowed_capabilities is None
                                         else sorted(k.allowed_capabilities)),
                "refuses": key_scope_refusal(k.principal, facts.body.model, facts.capabilities),
            }
            for k in keys
        ],
    }  # fmt: skip
