"""A place where verification found the log (or an export) broken."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Problem:
    kind: str
    """gap | inserted | reordered | chain_break | edited | column_mismatch |
    checkpoint_mismatch | bad_signature | unknown_key | truncated | head_mismatch |
    beyond_head | orphan | rule_index | checkpoint_chain | unsigned | chain_missing |
    filter_mismatch (an export's records against its manifest's mode and filters) |
    ownership_snapshot_missing | ownership_snapshot_mismatch (a tree a record names
    by digest, ``ownership_snapshots.py``)"""
    message: str
    node_id: str | None = None
    seq: int | None = None
    record_id: str | None = None
