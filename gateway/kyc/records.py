"""A customer row as the API shows it (``to_out``) and as history and the
admin-action log store it (``snapshot``); the ownership rows of the API's shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.kyc.schemas import OwnershipShare, as_utc
from gateway.kyc.schemas_out import CustomerOut, Screening, ScreeningHit
from gateway.kyc.tables import Customer, CustomerOwnership


def opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def to_out(c: Customer) -> CustomerOut:
    return CustomerOut(
        id=c.id,
        name=c.name,
        kind=c.kind,
        citizenships=list(c.citizenships),
        residence=c.residence,
        incorporated_in=c.incorporated_in,
        ownership=[
            OwnershipShare(
                country=o.country, percent=o.percent, name=o.name, ownership=o.owners or []
            )
            for o in c.ownership
        ],
        kyc_level=c.kyc_level,
        kyc_verified_at=opt_utc(c.kyc_verified_at),
        kyc_expires_at=opt_utc(c.kyc_expires_at),
        tier=c.tier,
        attributes=list(c.attributes),
        sanctions_status=c.sanctions_status,
        screening=Screening(
            list_version=c.screening_list_version,
            best_match=c.screening_best_match,
            score=c.screening_score,
            screened_at=opt_utc(c.screened_at),
            threshold=c.screening_threshold,
            hits=[ScreeningHit.model_validate(h) for h in c.screening_hits or ()],
        ),
        status=c.status,
        created_at=as_utc(c.created_at),
        updated_at=as_utc(c.updated_at),
    )


def ownership_rows(shares: list[OwnershipShare]) -> list[CustomerOwnership]:
    """One row per direct owner; an owning entity's own owners go whole into
    its row's JSON, as the API gives them (flat owners store no JSON)."""
    return [
        CustomerOwnership(
            country=o.country,
            percent=o.percent,
            name=o.name,
            owners=[sub.model_dump(mode="json") for sub in o.ownership] or None,
        )
        for o in shares
    ]


def snapshot(c: Customer) -> dict[str, Any]:
    """JSON-able record, as stored in history and admin_actions."""
    return to_out(c).model_dump(mode="json")
