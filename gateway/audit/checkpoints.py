"""Reading and checking signed checkpoints and tombstones."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.signing import fingerprint, payload_sha256, verify_signature
from gateway.audit.tables import audit_checkpoints, audit_keys


@dataclass(slots=True)
class Checkpoint:
    kind: str
    node_id: str
    seq: int
    head_hash: str
    count: int
    ts: str
    key_fingerprint: str
    payload: str
    signature: str
    problem: str | None = None
    problem_message: str = ""
    format: int = 1
    prev: tuple[int, str] | None = None
    """Format 2: ``(seq, payload sha256)`` of the chain's previous checkpoint; None
    only on a chain's first."""
    within_s: float | None = None
    """Format 2: the writer signs new records within this many seconds."""
    nodes: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Format 2: other chains' committed heads the writer read when signing."""

    @property
    def sha256(self) -> str:
        return payload_sha256(self.payload)

    def to_manifest(self) -> dict[str, Any]:
        return {"payload": self.payload, "signature": self.signature,
                "key_fingerprint": self.key_fingerprint}


@dataclass(slots=True)
class CheckpointSet:
    by_node: dict[str, list[Checkpoint]] = field(default_factory=dict)
    invalid: list[Checkpoint] = field(default_factory=list)
    keys: dict[str, bytes] = field(default_factory=dict)

    def valid_for(self, node_id: str) -> list[Checkpoint]:
        return [cp for cp in self.by_node.get(node_id, []) if cp.problem is None]


def check_checkpoint(
    payload: str, signature: str, key_fp: str, keys: Mapping[str, bytes],
    columns: Mapping[str, Any] | None = None,
) -> Checkpoint:
    """Parse a signed payload and check its signature (and the mirror columns, if given)."""
    try:
        doc = orjson.loads(payload)
        cp = Checkpoint(str(doc["kind"]), str(doc["node_id"]), int(doc["seq"]),
                        str(doc["head_hash"]), int(doc["count"]), str(doc["ts"]), key_fp,
                        payload, signature)
        _read_links(cp, doc)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        node = str(columns.get("node_id")) if columns else ""
        seq = int(columns.get("seq") or 0) if columns else 0
        return Checkpoint("checkpoint", node, seq, "", 0, "", key_fp, payload, signature,
                          "bad_signature", "checkpoint payload is not valid")
    key = keys.get(key_fp)
    if key is None:
        cp.problem = "unknown_key"
        cp.problem_message = (f"{cp.kind} at seq {cp.seq} is signed by key {key_fp[:16]}…, "
                              "which is not trusted")
    elif not verify_signature(key, signature, payload.encode("utf-8")):
        cp.problem = "bad_signature"
        cp.problem_message = f"{cp.kind} at seq {cp.seq}: signature does not verify"
    elif columns is not None and any(
        columns[name] != getattr(cp, name) for name in ("kind", "node_id", "seq", "head_hash")
    ):
        cp.problem = "bad_signature"
        cp.problem_message = f"{cp.kind} at seq {cp.seq}: columns differ from the signed payload"
    return cp


def _read_links(cp: Checkpoint, doc: dict[str, Any]) -> None:
    """The format 2 fields (``signing.CheckpointLinks``); format 1 has none."""
    cp.format = int(doc.get("format", 1))
    if cp.format < 2:
        return
    prev = doc["prev"]
    cp.prev = None if prev is None else (int(prev["seq"]), str(prev["sha256"]))
    cp.within_s = float(doc["within_s"])
    cp.nodes = {str(n): (int(h["seq"]), str(h["hash"])) for n, h in doc["nodes"].items()}


async def load_keys(conn: AsyncConnection) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for row in (await conn.execute(select(audit_keys))).all():
        try:
            raw = base64.b64decode(str(row.public_key), validate=True)
        except binascii.Error:
            continue  # an unreadable key verifies nothing; its checkpoints report unknown_key
        if fingerprint(raw) == row.fingerprint:
            keys[str(row.fingerprint)] = raw
    await conn.rollback()
    return keys


async def load_checkpoints(
    conn: AsyncConnection, trusted_keys: Iterable[bytes] | None = None,
    node_id: str | None = None,
) -> CheckpointSet:
    """Every checkpoint and tombstone (a few per thousand records), checked."""
    keys = (
        {fingerprint(k): k for k in trusted_keys}
        if trusted_keys is not None else await load_keys(conn)
    )
    result = CheckpointSet(keys=keys)
    query = select(audit_checkpoints).order_by(audit_checkpoints.c.node_id,
                                               audit_checkpoints.c.seq)
    if node_id is not None:
        query = query.where(audit_checkpoints.c.node_id == node_id)
    for row in (await conn.execute(query)).all():
        columns = {"kind": row.kind, "node_id": row.node_id, "seq": int(row.seq),
                   "head_hash": row.head_hash}
        cp = check_checkpoint(str(row.payload), str(row.signature), str(row.key_fingerprint),
                              keys, columns)
        result.by_node.setdefault(str(row.node_id), []).append(cp)
        if cp.problem is not None:
            result.invalid.append(cp)
    await conn.rollback()
    return result
