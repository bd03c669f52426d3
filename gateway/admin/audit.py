"""``/admin/v1/audit``: chain verification, the signing public keys, the
policy texts and the ownership trees the log holds (auditor)."""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response
from sqlalchemy import select

from gateway.admin.auth import AdminActor, require_roles
from gateway.audit.ownership_snapshots import snapshot_texts
from gateway.audit.policy_texts import policy_texts
from gateway.audit.policy_timeline import event_document
from gateway.audit.query import policy_events
from gateway.audit.signing import Signer, public_pem
from gateway.audit.tables import audit_keys
from gateway.audit.verify import verify_log
from gateway.deps import ServicesDep
from gateway.kyc.schemas import rfc3339
from gateway.policy.timing import parse_duration
from gateway.services import Services

router = APIRouter(prefix="/admin/v1", tags=["audit"])
Auditor = Annotated[AdminActor, Depends(require_roles("auditor"))]


def _running_signer(services: Services) -> Signer | None:
    signer = getattr(services.audit, "signer", None)
    return signer if isinstance(signer, Signer) else None


@router.get("/audit/verify")
async def verify_route(
    services: ServicesDep, _actor: Auditor, trust_stored_keys: bool = False
) -> dict[str, Any]:
    """Recompute every chain and checkpoint; ``ok`` false names the first broken place.

    Checkpoints must be signed by this gateway's running key, unless
    ``trust_stored_keys`` (e.g. after a key rotation) accepts every key in
    ``audit_keys``; the answer says which was used.
    """
    signer = _running_signer(services)
    trusted = None if trust_stored_keys or signer is None else [signer.public_raw]
    # Checkpoints written before they stated their cadence are held to this one.
    seconds = services.settings.audit_checkpoint_seconds
    report = await verify_log(services.engine, trusted_keys=trusted,
                              legacy_within_s=seconds + min(seconds, 10.0))
    doc = report.to_dict()
    doc["trusted_keys"] = "stored" if trusted is None else [signer.fingerprint] if signer else []
    return doc


@router.get("/audit/public-key")
async def public_keys_route(services: ServicesDep, _actor: Auditor) -> dict[str, Any]:
    """Every checkpoint-signing public key (PEM), and which one signs now."""
    async with services.sessions() as session:
        rows = (await session.execute(select(audit_keys).order_by(audit_keys.c.created_at))).all()
    if not rows:
        raise HTTPException(404, "no audit signing key registered yet")
    signer = _running_signer(services)
    return {
        "current": signer.fingerprint if signer else None,
        "keys": [{"fingerprint": r.fingerprint, "created_at": rfc3339(r.created_at),
                  "public_key_pem": public_pem(base64.b64decode(r.public_key))} for r in rows],
    }


@router.get("/audit/policies")
async def policy_events_route(
    services: ServicesDep, _actor: Auditor, since: str = "7d"
) -> dict[str, Any]:
    """Every bundle loaded (at start, on a reload, on a rollback) and every reload
    refused since ``since`` (30m, 12h, 7d, 2w), in log order, as ``gateway audit
    policies``: which version was in force when, and the rule windows a load
    brought that open or close later (``upcoming``)."""
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise HTTPException(422, f"since: {exc}") from None
    events = await policy_events(services.sessions, services.clock() - window)
    return {"since": since, "events": [event_document(*event) for event in events]}


_VERSION = re.compile(r"[0-9a-f]{8,64}")


@router.get("/audit/policies/{version}")
async def policy_text_route(version: str, services: ServicesDep, _actor: Auditor) -> Response:
    """The policy bundle a recorded ``policy_version`` names (or a unique prefix of
    8+ of its characters), as the exact canonical JSON whose SHA-256 is that
    version, from the log's own ``policy_reload`` records (as ``gateway audit
    policy``). 404: the log holds no text for it (recorded before the log kept
    policy texts, pruned, or never run here)."""
    wanted = version.lower()
    if _VERSION.fullmatch(wanted) is None:
        raise HTTPException(400, "not a policy version: hex SHA-256, or 8+ of its first "
                                 "characters")
    texts = await policy_texts(services.sessions)
    matches = sorted(v for v in texts if v.startswith(wanted))
    if len(matches) > 1:
        raise HTTPException(400, f"the prefix names {len(matches)} versions: "
                                 f"{', '.join(matches)}")
    if not matches:
        raise HTTPException(404, f"no policy text for version {wanted} in the log")
    return Response(texts[matches[0]].encode("utf-8"), media_type="application/json",
                    headers={"x-gateway-policy-version": matches[0]})


_DIGEST = re.compile(r"[0-9a-f]{64}")


@router.get("/audit/ownership/{sha256}")
async def ownership_snapshot_route(sha256: str, services: ServicesDep, _actor: Auditor) -> Response:
    """The ownership tree decision records name by ``facts.principal.ownership_sha256``,
    as the exact canonical JSON whose SHA-256 is that digest (a stored tree that
    does not hash to it is never returned: ``gateway audit verify`` reports it).
    404: no such tree is stored."""
    wanted = sha256.lower()
    if _DIGEST.fullmatch(wanted) is None:
        raise HTTPException(400, "not an ownership digest: 64 hex characters of SHA-256")
    text = (await snapshot_texts(services.sessions, [wanted])).get(wanted)
    if text is None:
        raise HTTPException(404, f"no ownership tree {wanted} is stored")
    return Response(text.encode("utf-8"), media_type="application/json")
