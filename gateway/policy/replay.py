"""Replay facts: what the audit log keeps so a request can be decided again later.

``replay_facts(principal, facts)`` is stored as ``DecisionRecord.facts``;
``from_replay(d)`` rebuilds the ``(Principal, RequestFacts)`` pair for
``gateway policy impact``. Prompt text is never stored (only its SHA-256), so
``prompt_matches`` cannot be re-evaluated: a replay uses the *recorded*
capabilities, and a rule with its own ``prompt_matches`` sees an empty prompt.

The proxy adds ``tier_demotion`` to the stored facts when the effective tier
was not the assigned one (the engine's reason, e.g. ``KYC expired at …``): it
explains the decision to a reader and is not an input, so ``from_replay``
ignores it and a replay derives the tier again; likewise ``ownership_control``
(``gateway.policy.control``), the ownership chain that made a refusal, and
``screening`` (``gateway.identity.screening_summary``), the hits of a customer
held by sanctions screening.

A large ownership tree is named by its SHA-256 (``ownership_sha256``, see
``gateway.identity.ownership_snapshot``) rather than carried; ``from_replay``
needs the tree itself under ``ownership`` (readers inline the stored snapshot)
and refuses a record that names one it was not given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from gateway.geo.origin import Origin
from gateway.identity.ownership import from_json as ownership_from_json
from gateway.identity.ownership_snapshot import DIGEST_KEY, RecordedOwnership
from gateway.identity.principal import Principal
from gateway.policy.facts import ApiShape, BodyFacts, RequestFacts

REPLAY_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def replay_facts(principal: Principal, facts: RequestFacts,
                 owned: RecordedOwnership | None = None) -> dict[str, Any]:
    """JSON-able facts of one decision, without prompt text. ``owned``: how the
    ownership is stated (default ``principal.ownership_record()``); the caller
    passes it when it must also hand the snapshot it names to the audit log."""
    body = facts.body
    owned = owned or principal.ownership_record()
    who: dict[str, Any] = {
        "customer_id": principal.customer_id,
        "name": principal.name,
        "kind": principal.kind,
        "citizenships": sorted(principal.citizenships),
        "residence": principal.residence,
        "incorporated_in": principal.incorporated_in,
        # An entry is {country, percent} as ever; a name and owners of its own
        # only when the record has them (chains), so flat records keep their bytes.
        # A large tree is named by digest instead (``identity.ownership_snapshot``).
        **owned.fields,
        "kyc_level": principal.kyc_level,
        "kyc_expires_at": _iso(principal.kyc_expires_at),
        "kyc_verified_at": _iso(principal.kyc_verified_at),
        "tier": principal.tier,
        "attributes": sorted(principal.attributes),
        "sanctions_status": principal.sanctions_status,
        "status": principal.status,
        "key_id": principal.key_id,
        "auth_method": principal.auth_method,
    }
    # A key's scope decides too (gateway.policy.key_scope); written only for
    # scoped keys, so every other record keeps its bytes.
    if principal.key_models is not None:
        who["key_models"] = sorted(principal.key_models)
    if principal.key_capabilities is not None:
        who["key_capabilities"] = sorted(principal.key_capabilities)
    return {
        "v": REPLAY_VERSION,
        "principal": who,
        "request": {
            "endpoint": facts.endpoint,
            "api": facts.api,
            "model": body.model,
            "stream": body.stream,
            "has_tools": body.has_tools,
            "max_tokens": body.max_tokens,
            "max_tokens_defaulted": body.max_tokens_defaulted,
            "message_count": body.message_count,
            "logprobs": body.logprobs,
            "reasoning": body.reasoning,
            "prompt_sha256": body.prompt_sha256,
            "input_tokens_estimate": body.input_tokens_estimate,
            "capabilities": sorted(facts.capabilities),
            "origin": {
                "client_ip": facts.origin.client_ip,
                "country": facts.origin.country,
                "region": facts.origin.region,
            },
        },
    }


def _dt(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _names(value: object) -> frozenset[str] | None:
    return None if value is None else frozenset(str(v) for v in cast(list[object], value))


def from_replay(d: dict[str, Any]) -> tuple[Principal, RequestFacts]:
    """Inverse of ``replay_facts`` (prompt text empty, capabilities as recorded)."""
    version = d.get("v", REPLAY_VERSION)
    if version != REPLAY_VERSION:
        raise ValueError(f"unsupported replay facts version {version!r}")
    p = d["principal"]
    r = d["request"]
    if p.get(DIGEST_KEY) is not None and "ownership" not in p:
        # Never decided as "no owners": the reader must put the stored tree in
        # (``audit.ownership_snapshots.inline_snapshots``) or skip the record.
        raise ValueError(f"ownership snapshot {p[DIGEST_KEY]} is not available")
    principal = Principal(
        customer_id=str(p["customer_id"]),
        name=str(p.get("name") or ""),
        kind=p.get("kind", "individual"),
        citizenships=frozenset(p.get("citizenships") or ()),
        residence=p.get("residence"),
        incorporated_in=p.get("incorporated_in"),
        ownership=ownership_from_json(p.get("ownership")),
        kyc_level=str(p.get("kyc_level") or "none"),
        kyc_expires_at=_dt(p.get("kyc_expires_at")),
        kyc_verified_at=_dt(p.get("kyc_verified_at")),
        tier=str(p.get("tier") or "public"),
        attributes=frozenset(p.get("attributes") or ()),
        sanctions_status=p.get("sanctions_status", "clear"),
        status=p.get("status", "active"),
        key_id=p.get("key_id"),
        auth_method=p.get("auth_method", "api_key"),
        key_models=_names(p.get("key_models")),
        key_capabilities=_names(p.get("key_capabilities")),
    )
    origin = r.get("origin") or {}
    body = BodyFacts(
        model=str(r["model"]),
        stream=bool(r.get("stream", False)),
        has_tools=bool(r.get("has_tools", False)),
        max_tokens=r.get("max_tokens"),
        max_tokens_defaulted=bool(r.get("max_tokens_defaulted", False)),
        message_count=int(r.get("message_count") or 0),
        logprobs=bool(r.get("logprobs", False)),
        reasoning=bool(r.get("reasoning", False)),
        prompt_text="",
        prompt_sha256=str(r.get("prompt_sha256") or ""),
        input_tokens_estimate=int(r.get("input_tokens_estimate") or 0),
    )
    facts = RequestFacts(
        endpoint=str(r.get("endpoint") or "/v1/chat/completions"),
        api=cast(ApiShape, r.get("api", "openai")),
        body=body,
        origin=Origin(origin.get("client_ip"), origin.get("country"), origin.get("region")),
        capabilities=frozenset(r.get("capabilities") or ()),
    )
    return principal, facts
