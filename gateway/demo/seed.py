"""Demo customers for ``gateway serve --demo``: one per interesting policy case.

Idempotent by recreation: customer ids are fixed (``demo-*``), and each run
resets every demo record to the canonical values below (through the normal
update path, so the change is in the history) and gives each one a fresh API
key, revoking the demo keys of earlier runs. Key secrets cannot be recovered
from their hashes, so "reusing" a key would leave nothing to print.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminActor
from gateway.identity.keys import create_api_key, revoke_api_key
from gateway.identity.tables import ApiKey
from gateway.kyc import service
from gateway.kyc.schemas import CustomerCreate, CustomerPatch
from gateway.kyc.screening import Screener
from gateway.kyc.tables import Customer

SEED_ACTOR = AdminActor(name="demo-seed", role="admin", token_id=None)
DEMO_KEY_NAME = "demo"


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    id: str
    name: str
    description: str
    tier: str
    key_id: str
    key: str
    """The clear API key, for printing once."""


def _specs(now: datetime) -> list[tuple[str, dict[str, Any]]]:
    year = (now + timedelta(days=365)).isoformat()
    return [
        ("US citizen, government cleared", {
            "id": "demo-gov-us", "name": "Avery Demo (US government)", "citizenships": ["US"],
            "residence": "US", "kyc_level": "government_cleared", "kyc_expires_at": year,
            "tier": "government"}),
        ("dual US/CN citizen, government tier (a US person)", {
            "id": "demo-dual-us-cn", "name": "Lin Demo (dual US/CN)", "citizenships": ["US", "CN"],
            "residence": "US", "kyc_level": "government_cleared", "kyc_expires_at": year,
            "tier": "government"}),
        ("US permanent resident, not a citizen", {
            "id": "demo-us-lpr", "name": "Ravi Demo (US permanent resident)",
            "citizenships": ["IN"], "residence": "US", "kyc_level": "kyb_verified",
            "kyc_expires_at": year, "tier": "enterprise",
            "attributes": ["us_permanent_resident"]}),
        ("German enterprise", {
            "id": "demo-de-enterprise", "name": "Demo Werke GmbH", "kind": "organization",
            "incorporated_in": "DE", "residence": "DE",
            "ownership": [{"country": "DE", "percent": 100}], "kyc_level": "kyb_verified",
            "kyc_expires_at": year, "tier": "enterprise"}),
        ("organization 60% owned from CN", {
            "id": "demo-cn-controlled", "name": "Demo Holdings Ltd", "kind": "organization",
            "incorporated_in": "SG", "residence": "SG",
            "ownership": [{"country": "CN", "percent": 60}, {"country": "SG", "percent": 40}],
            "kyc_level": "kyb_verified", "kyc_expires_at": year, "tier": "enterprise"}),
        ("public-tier individual, email verified", {
            "id": "demo-public", "name": "Sam Demo (public)", "citizenships": ["FR"],
            "residence": "FR", "kyc_level": "email_verified", "tier": "public"}),
        ("enterprise whose KYC expired 30 days ago", {
            "id": "demo-kyc-expired", "name": "Expired Demo Corp", "kind": "organization",
            "incorporated_in": "US", "residence": "US", "kyc_level": "kyb_verified",
            "kyc_expires_at": (now - timedelta(days=30)).isoformat(), "tier": "enterprise"}),
        ("potential sanctions match (synthetic name), held for review", {
            "id": "demo-sanctions-hit", "name": "Borislav Andreyevich Kvetkin",
            "citizenships": ["GB"], "kyc_level": "id_verified", "kyc_expires_at": year,
            "tier": "enterprise"}),
    ]  # fmt: skip


async def seed_demo(
    sessions: async_sessionmaker[AsyncSession],
    screener: Screener | None = None,
    now: datetime | None = None,
) -> list[DemoCustomer]:
    """Create or reset the demo customers and give each a fresh key (see module doc).

    Without a ``screener`` nothing is screened and nothing is said per customer:
    the caller says it once (``gateway serve --demo`` prints one line)."""
    at = now or datetime.now(UTC)
    out: list[DemoCustomer] = []
    async with sessions() as session:
        for description, raw in _specs(at):
            data = CustomerCreate.model_validate(raw)
            cid = raw["id"]
            if await session.get(Customer, cid) is None:
                await service.create_customer(session, data, SEED_ACTOR, screener, at,
                                              warn_unscreened=False)  # fmt: skip
            else:
                fields = data.model_dump(exclude={"id"})
                fields["sanctions_status"] = "clear"
                patch = CustomerPatch.model_validate(fields)
                await service.update_customer(session, cid, patch, SEED_ACTOR, screener, at,
                                              warn_unscreened=False)  # fmt: skip
            if cid == "demo-sanctions-hit":
                # Flagged even when no list is loaded, so the demo always shows the case.
                patch = CustomerPatch(sanctions_status="potential_match",
                                      reason="demo: a held customer to walk through")
                await service.update_customer(session, cid, patch, SEED_ACTOR, None, at)
            old = await session.execute(
                select(ApiKey.id).where(
                    ApiKey.customer_id == cid,
                    ApiKey.name == DEMO_KEY_NAME,
                    ApiKey.revoked_at.is_(None),
                )
            )
            for key_id in old.scalars().all():
                await revoke_api_key(session, key_id, SEED_ACTOR, at)
            row, clear = await create_api_key(session, cid, SEED_ACTOR, at, name=DEMO_KEY_NAME)
            out.append(DemoCustomer(cid, data.name, description, data.tier, row.id, clear))
        await session.commit()
    return out
