"""The caller as the policy engine sees it: an immutable snapshot of a KYC record.

Produced by the identify stage (from a gateway key or an OIDC token plus the
customer store), consumed by ``decide``. It carries the *assigned* tier; the
*effective* tier depends on the policy bundle and the clock, so the engine
derives it (``gateway.policy.engine.effective_tier``), which keeps KYC expiry
exact to the second without any cache invalidation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

CustomerKind = Literal["individual", "organization"]
SanctionsStatus = Literal["clear", "potential_match", "confirmed_match"]
CustomerStatus = Literal["active", "suspended"]

US_PERSON_ATTRIBUTES = frozenset({"us_permanent_resident", "us_protected_individual"})


@dataclass(frozen=True, slots=True)
class Ownership:
    """One owner country of an organization and its share in percent (0-100)."""

    country: str
    percent: float


@dataclass(frozen=True, slots=True)
class Principal:
    customer_id: str
    name: str = ""
    kind: CustomerKind = "individual"
    citizenships: frozenset[str] = frozenset()
    residence: str | None = None
    incorporated_in: str | None = None
    ownership: tuple[Ownership, ...] = ()
    kyc_level: str = "none"
    kyc_expires_at: datetime | None = None
    tier: str = "public"
    attributes: frozenset[str] = frozenset()
    sanctions_status: SanctionsStatus = "clear"
    status: CustomerStatus = "active"
    key_id: str | None = None
    """The gateway key used, or None for an OIDC token."""
    auth_method: Literal["api_key", "oidc", "test"] = "api_key"
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_us_person(self) -> bool:
        """US person for deemed-export purposes (15 CFR 772.1 (1), BIS FAQ).

        A US citizen (any one citizenship suffices), a lawful permanent
        resident, or a protected individual under 8 U.S.C. 1324b(a)(3).
        Presence in the US alone does not make one a US person here.
        """
        return "US" in self.citizenships or bool(self.attributes & US_PERSON_ATTRIBUTES)

    def controlling_countries(self, threshold_percent: float) -> frozenset[str]:
        """Countries whose aggregate ownership share reaches ``threshold_percent``.

        Shares of the same country are summed (OFAC's aggregate 50% rule).
        """
        totals: dict[str, float] = {}
        for share in self.ownership:
            totals[share.country] = totals.get(share.country, 0.0) + share.percent
        return frozenset(c for c, pct in totals.items() if pct >= threshold_percent)
