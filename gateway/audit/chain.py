"""The record format on disk and the hash chain over it.

A record's ``body`` is the canonical JSON of its fields plus ``node_id`` and
``seq``: orjson with sorted keys, UTC times as RFC 3339 with ``Z``, sets as
sorted lists. Canonical means re-serialising the parsed body gives the same
bytes, which is what lets an auditor re-hash an export offline.

    hash = SHA-256( prev_hash (64 lowercase hex chars, ASCII) || body )

The first record of a chain has ``prev_hash`` = 64 zeros (``GENESIS``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from gateway.audit.record import RECORD_VERSION, UNHASHED, DecisionRecord, OutcomeRecord

GENESIS = "0" * 64
_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS

DECISION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(DecisionRecord)
                                         if not f.metadata.get(UNHASHED))
OUTCOME_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(OutcomeRecord))
CHAIN_FIELDS = ("prev_hash", "hash")
"""Added to a body when it is shown or exported; never part of what is hashed."""


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"audit record field of type {type(value).__name__} is not JSON")


def canonical(value: Any) -> bytes:
    """Canonical JSON bytes (raises TypeError for values JSON cannot carry)."""
    return orjson.dumps(value, default=_default, option=_OPTS)


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def utc(value: datetime) -> datetime:
    """An aware UTC datetime (naive values, as SQLite returns them, are UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def truncate_ip(ip: str | None, mode: Literal["none", "24_48"]) -> str | None:
    """Full address by default; ``24_48`` keeps the /24 (IPv4) or /48 (IPv6) network."""
    if ip is None or mode == "none":
        return ip
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # not an address (e.g. "unknown"): nothing personal to truncate
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)


def decision_fields(rec: DecisionRecord, ip_mode: Literal["none", "24_48"]) -> dict[str, Any]:
    fields = {name: getattr(rec, name) for name in DECISION_FIELDS}
    fields["ts"] = utc(rec.ts)
    fields["client_ip"] = truncate_ip(rec.client_ip, ip_mode)
    return fields


def outcome_fields(rec: OutcomeRecord) -> dict[str, Any]:
    fields = {name: getattr(rec, name) for name in OUTCOME_FIELDS}
    fields["ts"] = utc(rec.ts)
    return fields


def event_fields(
    record_id: str, ts: datetime, kind: str, payload: dict[str, Any]
) -> dict[str, Any]:
    return {"id": record_id, "ts": utc(ts), "kind": kind, "version": RECORD_VERSION,
            "payload": payload}


CUSTOMER_ID_LEN = 128
"""``audit_records.customer_id`` (customer ids: ``kyc.schemas.ID_PATTERN``)."""
MODEL_LEN = 128
"""``audit_records.model``: the client chooses the model, the column is bounded."""


def column_text(value: Any, limit: int) -> Any:
    """What a bounded text query column stores for a record's field.

    The body (what is hashed, shown and exported) keeps the value exactly; the
    query column, which PostgreSQL types as ``VARCHAR(limit)`` and which cannot
    hold NUL, gets NUL as U+FFFD and at most ``limit`` characters. Otherwise one
    request naming a 200-character or NUL-bearing model made the store refuse
    the whole group-commit batch it rode in. ``verify`` compares through this too.
    """
    if type(value) is not str or (len(value) <= limit and "\x00" not in value):
        return value
    return value.replace("\x00", "\ufffd")[:limit]


def index_columns(fields: dict[str, Any]) -> dict[str, Any]:
    """The query columns of ``audit_records`` derived from a record's fields."""
    return {
        "id": fields["id"],
        "kind": fields["kind"],
        "ts": fields["ts"],
        "customer_id": column_text(fields.get("customer_id"), CUSTOMER_ID_LEN),
        "decision": fields.get("decision"),
        "status": fields.get("status"),
        "model": column_text(fields.get("model"), MODEL_LEN),
        "origin_country": fields.get("origin_country"),
        "origin_region": fields.get("origin_region"),
        "decision_id": fields.get("decision_id"),
    }


def parse_body(body: str | bytes) -> dict[str, Any]:
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise ValueError("record body is not a JSON object")
    return value


def body_of_export(item: dict[str, Any]) -> bytes:
    """The canonical body of an exported record (its fields minus the chain fields)."""
    return canonical({k: v for k, v in item.items() if k not in CHAIN_FIELDS})
