"""A ``kyc_verified_at`` dated in the future is refused wherever it can be set.

An event older than the stored ``kyc_verified_at`` is not applied (it would
roll the KYC state back: ``gateway.kyc.own_events.apply_kyc_event``). So a
verification dated in the future, once stored, outranks every later KYC
webhook until that date: a vendor's downgrade is answered ``applied: false``
and the customer keeps its level. The webhook refuses such an event (422);
the admin API (POST and PATCH, 422) and ``gateway customers import`` (exit 2)
refuse such a record, with the same tolerance for clocks that differ a
little: ``GATEWAY_KYC_WEBHOOK_TOLERANCE_SECONDS``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.kyc.schemas import rfc3339

FIELD = "kyc_verified_at"


def future_verification(
    verified_at: datetime | None, now: datetime, tolerance_seconds: int
) -> str | None:
    """What is wrong with ``verified_at`` (a message without the field name), or None."""
    if verified_at is None or verified_at <= now + timedelta(seconds=tolerance_seconds):
        return None
    return (
        f"{rfc3339(verified_at)} is in the future (more than {tolerance_seconds} s after "
        f"{rfc3339(now)}): a verification dated later than now would outrank every later "
        "KYC event until that date"
    )
