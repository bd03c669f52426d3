"""The caller as the policy engine sees it: an immutable snapshot of a KYC record.

Produced by the identify stage (from a gateway key or an OIDC token plus the
customer store), consumed by ``decide``. It carries the *assigned* tier; the
*effective* tier depends on the policy bundle and the clock, so the engine
derives it (``gateway.policy.account_tier.effective_tier``), which keeps KYC expiry
exact to the second without any cache invalidation.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gateway.identity.ownership import (
    CONTROL_TOLERANCE_PERCENT,
    Ownership,
    controlled,
    controlled_share,
)
from gateway.identity.ownership_snapshot import RecordedOwnership, recorded_ownership

CustomerKind = Literal["individual", "organization"]
SanctionsStatus = Literal["clear", "potential_match", "confirmed_match"]
CustomerStatus = Literal["active", "suspended"]

US_PERSON_ATTRIBUTES = frozenset({"us_permanent_resident", "us_protected_individual"})

__all__ = ["CONTROL_TOLERANCE_PERCENT", "Ownership", "Principal"]


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
    kyc_verified_at: datetime | None = None
    tier: str = "public"
    attributes: frozenset[str] = frozenset()
    sanctions_status: SanctionsStatus = "clear"
    status: CustomerStatus = "active"
    key_id: str | None = None
    """The gateway key used, or None for an OIDC token."""
    auth_method: Literal["api_key", "oidc", "test"] = "api_key"
    key_models: frozenset[str] | None = None
    """The models the key used may reach (None: no narrowing below the tier)."""
    key_capabilities: frozenset[str] | None = None
    """The capabilities a request on the key used may have (None: no narrowing)."""
    key_expires_at: datetime | None = None
    """When the key used stops working (None: never, or no key): a stream on it
    ends then (``gateway.proxy.cut``). Not a policy input."""
    token_expires_at: datetime | None = field(default=None, compare=False, hash=False)
    """When the OIDC token used stops verifying (its ``exp`` plus the leeway;
    None: a key): a stream on it ends then, as at ``key_expires_at``. Set on a
    per-request copy of the customer's principal, which is cached per customer,
    not per token (``gateway.identity.identifier``). Not a policy input."""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    screening: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    """A held customer's screening hits, for the records of its refusals
    (``gateway.identity.screening_summary``); None when ``clear``. Not a
    policy input: replays leave it out."""
    sanctions_hold: str | None = field(default=None, compare=False, hash=False)
    """Why ``sanctions_status`` is ``potential_match`` when the customer record
    says ``clear`` (held until rescreened against the list in force,
    ``gateway.identity.screening_summary.rescreen_hold``); the engine gives it
    as the tier demotion. None otherwise. Not a policy input."""
    recorded: RecordedOwnership | None = field(default=None, compare=False, hash=False)
    """How decision records state ``ownership`` (inline, or by digest), computed
    once when the principal is cached (``identity.store``); None: computed per
    record (``recorded_ownership``), for principals built elsewhere."""

    def ownership_record(self) -> RecordedOwnership:
        """``recorded``, or computed now for a principal not from the store."""
        if self.recorded is not None:
            return self.recorded
        return recorded_ownership(self.ownership)

    @property
    def is_us_person(self) -> bool:
        """US person for deemed-export purposes (15 CFR 772.1 (1), BIS FAQ).

        A US citizen (any one citizenship suffices), a lawful permanent
        resident, or a protected individual under 8 U.S.C. 1324b(a)(3).
        Presence in the US alone does not make one a US person here.

        Never an organization, whatever its record holds (a KYB form's
        "nationality" entered as a citizenship, a person's attribute): the
        people behind its key may be foreign nationals, and the deemed-export
        test is the end user's (docs/policy.md, "Compliance semantics").
        """
        if self.kind != "individual":
            return False
        return "US" in self.citizenships or bool(self.attributes & US_PERSON_ATTRIBUTES)

    def ownership_share_in(
        self, countries: Collection[str], threshold_percent: float = 50.0
    ) -> float:
        """Percent held by the owners of ``countries`` together: owners from
        those countries, and owning entities that are themselves controlled
        from them at ``threshold_percent`` (``gateway.identity.ownership``)."""
        return controlled_share(self.ownership, countries, threshold_percent)

    def controlled_by(self, countries: Collection[str], threshold_percent: float) -> bool:
        """Do owners of ``countries``, together, hold at least ``threshold_percent``?

        Aggregated across the whole set, not per country: OFAC's 50% rule adds
        up the holdings of all blocked persons, so 30% CN + 25% HK is control
        by a set containing both; and traced through owning entities, directly
        or indirectly (``gateway.identity.ownership`` says how).
        """
        return controlled(self.ownership, countries, threshold_percent)
