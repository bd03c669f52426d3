"""Reads of the customer store for the identify stage (cache misses only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.identity.ownership import from_json as ownership_from_json
from gateway.identity.ownership_snapshot import recorded_ownership
from gateway.identity.principal import Ownership, Principal, SanctionsStatus
from gateway.identity.screening_summary import (
    ListInForce,
    awaiting_rescreen,
    rescreen_hold,
    screening_summary,
)
from gateway.identity.tables import ApiKey
from gateway.kyc.schemas import as_utc
from gateway.kyc.tables import Customer


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the cache keeps per key: the hash to verify and the principal to return."""

    key_id: str
    customer_id: str
    salt: str
    hash: str
    expires_at: datetime | None
    revoked: bool
    principal: Principal


def principal_from(
    customer: Customer,
    key_id: str | None,
    method: str,
    key: ApiKey | None = None,
    in_force: ListInForce | None = None,
) -> Principal:
    """``in_force``: the list this process screens with; a ``clear`` of
    another list or threshold is held (``screening_summary.awaiting_rescreen``)."""
    held = awaiting_rescreen(customer, in_force)
    ownership = tuple(
        Ownership(o.country, o.percent, o.name, ownership_from_json(o.owners))
        for o in customer.ownership
    )
    return Principal(
        customer_id=customer.id,
        name=customer.name,
        kind="organization" if customer.kind == "organization" else "individual",
        citizenships=frozenset(customer.citizenships or ()),
        residence=customer.residence,
        incorporated_in=customer.incorporated_in,
        ownership=ownership,
        # Once per cache load: records name a large tree by its digest without
        # hashing it per request (``identity.ownership_snapshot``).
        recorded=recorded_ownership(ownership),
        kyc_level=customer.kyc_level,
        kyc_expires_at=None if customer.kyc_expires_at is None else as_utc(customer.kyc_expires_at),
        kyc_verified_at=(None if customer.kyc_verified_at is None
                         else as_utc(customer.kyc_verified_at)),
        tier=customer.tier,
        attributes=frozenset(customer.attributes or ()),
        sanctions_status="potential_match" if held else _sanctions(customer.sanctions_status),
        sanctions_hold=rescreen_hold(customer, in_force) if held and in_force else None,
        status="suspended" if customer.status != "active" else "active",
        key_id=key_id,
        auth_method="oidc" if method == "oidc" else "api_key",
        key_models=_scope(key.allowed_models if key is not None else None),
        key_capabilities=_scope(key.allowed_capabilities if key is not None else None),
        key_expires_at=None if key is None or key.expires_at is None else as_utc(key.expires_at),
        # Once per cache load: a refusal's record names the hits without a read.
        screening=screening_summary(customer, in_force),
    )


def _scope(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def _sanctions(value: str) -> SanctionsStatus:
    # Unknown values fail closed to the strictest state.
    if value == "clear":
        return "clear"
    if value == "potential_match":
        return "potential_match"
    return "confirmed_match"


async def key_row(session: AsyncSession, key_id: str) -> tuple[ApiKey, Customer] | None:
    """The key and its customer, or None: the one read both the identify stage's
    cache and ``policy explain --key`` build their own record from."""
    row = (
        await session.execute(
            select(ApiKey, Customer)
            .join(Customer, Customer.id == ApiKey.customer_id)
            .where(ApiKey.id == key_id)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def load_key(
    session: AsyncSession, key_id: str, in_force: ListInForce | None = None
) -> KeyRecord | None:
    row = await key_row(session, key_id)
    if row is None:
        return None
    key, customer = row
    return KeyRecord(
        key_id=key.id,
        customer_id=customer.id,
        salt=key.secret_salt,
        hash=key.secret_hash,
        expires_at=None if key.expires_at is None else as_utc(key.expires_at),
        revoked=key.revoked_at is not None,
        principal=principal_from(customer, key.id, "api_key", key, in_force),
    )


async def load_customer(
    session: AsyncSession, customer_id: str, in_force: ListInForce | None = None
) -> Principal | None:
    customer = await session.get(Customer, customer_id)
    return None if customer is None else principal_from(customer, None, "oidc", None, in_force)
