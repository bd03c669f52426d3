"""``gateway audit verify``'s check of one stored record: the row against the
chain before it, its hash, and its query columns against its hashed body.

Separate from ``verify.py``, which walks the chains (chunks, checkpoints, head
rows, the side index): this is the per-record judgement, a pure function of
the row, its parsed body and the two hashes before it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row

from gateway.audit.chain import (
    CUSTOMER_ID_LEN,
    MODEL_LEN,
    chain_hash,
    column_text,
    parse_body,
    utc,
)
from gateway.audit.problems import Problem

_COLUMNS = ("id", "kind", "customer_id", "decision", "status", "model",
            "origin_country", "origin_region", "decision_id")
# Bounded text columns hold ``column_text`` of the body's value (the writer's rule).
_BOUNDED = {"customer_id": CUSTOMER_ID_LEN, "model": MODEL_LEN}


def parse_stored_body(body: str) -> dict[str, Any] | None:
    try:
        return parse_body(body)
    except (orjson.JSONDecodeError, ValueError):
        return None


def row_problem(
    row: Row[Any], body: dict[str, Any] | None, node_id: str, expected: int, prev: str,
    prev_prev: str,
) -> Problem | None:
    seq, rid = int(row.seq), str(row.id)
    if seq > expected:
        span = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
        return Problem("gap", f"{span} missing before seq {seq}: records deleted",
                       node_id, seq, rid)
    if body is None:
        return Problem("edited", f"seq {seq}: body is not a JSON object", node_id, seq, rid)
    body_seq = body.get("seq")
    if row.prev_hash != prev and prev_prev and row.prev_hash == prev_prev:
        return Problem("inserted", f"seq {seq - 1} was inserted: seq {seq} links to seq "
                       f"{seq - 2}", node_id, seq - 1, rid)
    if body_seq != seq or body.get("node_id") != node_id or body.get("id") != rid:
        return Problem("reordered", f"seq {seq} holds the record of {body.get('node_id')} seq "
                       f"{body_seq} (id {body.get('id')}): records moved", node_id, seq, rid)
    if row.prev_hash != prev:
        return Problem("chain_break", f"seq {seq}: prev_hash is not the hash of seq {seq - 1}: "
                       "that record was altered, or records were removed", node_id, seq, rid)
    if chain_hash(str(row.prev_hash), str(row.body).encode("utf-8")) != row.hash:
        return Problem("edited", f"seq {seq}: content does not match its hash (edited)",
                       node_id, seq, rid)
    for name in _COLUMNS:
        want = body.get(name)
        if (want if name not in _BOUNDED else column_text(want, _BOUNDED[name])) != getattr(
                row, name):
            return Problem("column_mismatch", f"seq {seq}: column {name!r} differs from the "
                           "hashed body (edited)", node_id, seq, rid)
    if datetime.fromisoformat(str(body.get("ts"))) != utc(row.ts):
        return Problem("column_mismatch", f"seq {seq}: column 'ts' differs from the hashed body",
                       node_id, seq, rid)
    return None
