"""Who the caller counts as before any rule is read: steps 1 to 3 of ``decide``.

``account_refusal``: an account that cannot be served whatever it asks
(suspended, or a confirmed sanctions match). ``effective_tier``: the tier it is
served at, which is the assigned tier only while the bundle's KYC, citizenship
and sanctions requirements for that tier hold at ``now``, and otherwise
``public`` with the reason.

Separate from ``engine.py`` because more than the engine asks these questions
without deciding a request: ``GET /v1/models``, the batch list and the account
cut refuse an unservable account up front; ``GET /v1/models`` and the usage
admin route read the effective tier. Pure functions of the principal, the
bundle and ``now``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.identity.principal import Principal
from gateway.policy.compiled import CompiledBundle
from gateway.policy.conditions import kyc_expired, kyc_too_old

PUBLIC = "public"


def account_refusal(principal: Principal) -> tuple[str, str] | None:
    """``(rule id, reason)`` when the account itself cannot be served, whatever
    it asks for: suspended, or a confirmed sanctions match."""
    if principal.status == "suspended":
        return "customer-suspended", "This account is suspended."
    if principal.sanctions_status == "confirmed_match":
        return "sanctions-confirmed-match", "This account cannot be served (sanctions screening)."
    return None


def effective_tier(
    principal: Principal, bundle: CompiledBundle, now: datetime
) -> tuple[str, str | None]:
    """(tier, reason it differs from the assigned tier or None)."""
    assigned = principal.tier
    tier = bundle.tiers.get(assigned)
    if tier is None:
        return PUBLIC, f"assigned tier '{assigned}' is not defined in the policy bundle"
    if assigned == PUBLIC:
        return PUBLIC, None
    if principal.sanctions_status != "clear":
        # A hold for a rescreen is no lead: the record says why it is held.
        return PUBLIC, principal.sanctions_hold or (
            f"sanctions screening status is {principal.sanctions_status}"
        )
    rank = bundle.kyc_rank.get(principal.kyc_level, -1)
    if rank < tier.min_rank:
        return PUBLIC, (
            f"KYC level '{principal.kyc_level}' is below tier {assigned}'s minimum '{tier.min_kyc}'"
        )
    if kyc_expired(principal, now):
        return PUBLIC, f"KYC expired at {_rfc3339(principal.kyc_expires_at)}"
    if tier.kyc_max_age is not None and kyc_too_old(principal, tier.kyc_max_age, now):
        verified = principal.kyc_verified_at
        when = "at an unrecorded time" if verified is None else f"at {_rfc3339(verified)}"
        return PUBLIC, (
            f"KYC verified {when}; tier {assigned} requires re-verification every "
            f"{tier.kyc_max_age.days} days"
        )
    missing = tier.require_attributes - principal.attributes
    if missing:
        return PUBLIC, f"missing required attribute(s): {', '.join(sorted(missing))}"
    if tier.require_citizenship is not None and principal.citizenships.isdisjoint(
        tier.require_citizenship
    ):
        return PUBLIC, f"tier {assigned} requires citizenship in {tier.require_citizenship_label}"
    return assigned, None


def _rfc3339(value: datetime | None) -> str:
    # As the admin API writes times (UTC, ``Z``): the demotion reason is kept in
    # decision records, where an auditor compares it with the customer record.
    if value is None:
        return "never"
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")
