"""One audit batch: queued records turned into chained rows, and the portable commit.

A record's fields are serialised exactly once, here, when the batch is built
(``node_id`` and ``seq`` are only known then). A record whose fields JSON
cannot carry is refused alone: its caller gets the ``TypeError`` and the rest
of the batch goes on, so one bad record never costs the others their commit.

Rows are plain tuples in ``audit_records`` column order, ready for
``sqlite3.executemany`` (SQLite: times pre-formatted the way SQLAlchemy's
dialect stores them); the Core path (PostgreSQL) zips them into dicts.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.chain import (
    CUSTOMER_ID_LEN,
    MODEL_LEN,
    canonical,
    chain_hash,
    column_text,
    utc,
)
from gateway.audit.tables import audit_checkpoints, audit_decision_rules, audit_nodes, audit_records
from gateway.identity.ownership_snapshot import OwnershipSnapshot

RECORD_COLS = ("id", "node_id", "seq", "kind", "ts", "customer_id", "decision", "status",
               "model", "origin_country", "origin_region", "decision_id", "body", "prev_hash",
               "hash")
RULE_COLS = ("rule_id", "decision_id")
# The tuples below are positional: a schema change must fail here, at import, not in a batch.
assert tuple(c.name for c in audit_records.columns) == RECORD_COLS, "audit_records changed"
assert tuple(c.name for c in audit_decision_rules.columns) == RULE_COLS


class ChainConflict(Exception):
    """The head compare-and-set failed: another writer owns or moved this chain."""


def refused_value(exc: BaseException) -> bool:
    """Did the store refuse a value of the batch (not fail as a store)?

    SQLSTATE class 22 (data exception: too long, NUL, out of range) or 23
    (integrity), as PostgreSQL reports them through asyncpg (``orig.sqlstate``),
    or the matching sqlite3 / SQLAlchemy classes. Such a batch is retried record
    by record, so only the offending request fails; anything else (connection
    lost, timeout, disk full, a moved file, a chain conflict) is an outage and
    fails the batch as before.
    """
    if isinstance(exc, sqlite3.DataError | sqlite3.IntegrityError | DataError | IntegrityError):
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


def store_error(exc: BaseException) -> str:
    """``Type: message`` of a failed commit, for log lines and the 503's reason.

    The driver's own message, first line: SQLAlchemy's ``str()`` of a failed
    statement appends the statement and its parameters, here every record of
    the batch (customer ids, citizenships, client IPs), which belong in the
    audit log behind the auditor role, not in application logs.
    """
    text = str(getattr(exc, "orig", None) or exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def sqlite_time(value: datetime) -> str:
    """A UTC time as SQLAlchemy's SQLite dialect stores it (``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    return utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def keep_time(value: datetime) -> datetime:
    """The ``ts`` parameter for drivers that take datetimes (the Core path)."""
    return value


@dataclass(slots=True)
class Pending:
    fields: dict[str, Any]
    rule_ids: list[str]
    future: asyncio.Future[None] | None
    """None for records nobody awaits (outcomes, background events)."""
    at: float
    """Loop time when queued: un-awaited records are flushed after a bounded delay."""
    group: object | None = None
    """Records that commit together or not at all (``AuditWriter.record_many``:
    a Message Batch create and its inner requests); None for a record alone."""
    snapshot: OwnershipSnapshot | None = None
    """The ownership tree the record names by digest, stored with it unless
    already stored (``audit/ownership_snapshots.py``)."""


@dataclass(slots=True)
class BatchWrite:
    node_id: str
    owner: str
    old_seq: int
    new_seq: int
    new_hash: str
    now: datetime
    rows: list[tuple[Any, ...]]
    rule_rows: list[tuple[str, str]]
    checkpoint: dict[str, Any] | None = None
    make_checkpoint: Callable[[dict[str, tuple[int, str]]], dict[str, Any]] | None = None
    """SQLite fast path: builds ``checkpoint`` from the other chains' heads,
    which the store reads inside the commit's own transaction and thread call
    (``sqlite_fast``), so a due checkpoint costs its batch no extra hop."""
    snapshots: list[tuple[str, str]] = field(default_factory=list)
    """``(sha256, canonical tree)`` the batch's records name that the writer
    has not seen stored: inserted in the same transaction, if not there yet."""


@dataclass(slots=True)
class Built:
    write: BatchWrite
    accepted: list[Pending]
    refused: list[tuple[Pending, Exception]] = field(default_factory=list)


def one_group(batch: list[Pending]) -> bool:
    """Is ``batch`` the records of one group, and nothing else?"""
    group = batch[0].group
    return group is not None and all(p.group is group for p in batch)


def units(batch: list[Pending]) -> list[list[Pending]]:
    """``batch`` cut into what must commit together: each group whole (its
    records are queued one after the other), every other record alone."""
    found: list[list[Pending]] = []
    for p in batch:
        if p.group is not None and found and found[-1][0].group is p.group:
            found[-1].append(p)
        else:
            found.append([p])
    return found


def build_whole_groups(batch: list[Pending], node_id: str, owner: str, seq: int, prev: str,
                       now: datetime, time_param: Callable[[datetime], Any],
                       stored: Collection[str] = frozenset()) -> Built:
    """``build_batch``, where a record JSON cannot carry refuses its whole
    group with it (its other records get the same error, none is written)."""
    built = build_batch(batch, node_id, owner, seq, prev, now, time_param, stored)
    why = {id(p.group): exc for p, exc in built.refused if p.group is not None}
    if not why:
        return built
    gone = {id(p) for p, _ in built.refused}
    kept = [p for p in batch if p.group is None or id(p.group) not in why]
    dropped = [(p, why[id(p.group)]) for p in batch
               if p.group is not None and id(p.group) in why and id(p) not in gone]
    rebuilt = build_batch(kept, node_id, owner, seq, prev, now, time_param, stored)
    rebuilt.refused = [*built.refused, *dropped]
    return rebuilt


def build_batch(batch: list[Pending], node_id: str, owner: str, seq: int, prev: str,
                now: datetime, time_param: Callable[[datetime], Any],
                stored: Collection[str] = frozenset()) -> Built:
    """Chain ``batch`` after ``(seq, prev)``; ``time_param`` shapes the ``ts`` column.
    ``stored``: digests of snapshots known to be committed (not inserted again)."""
    old_seq = seq
    snapshots: dict[str, str] = {}
    rows: list[tuple[Any, ...]] = []
    rule_rows: list[tuple[str, str]] = []
    accepted: list[Pending] = []
    refused: list[tuple[Pending, Exception]] = []
    for p in batch:
        f = p.fields
        f["node_id"] = node_id
        f["seq"] = seq + 1
        try:
            body = canonical(f)
        except TypeError as exc:
            refused.append((p, exc))
            continue
        seq += 1
        digest = chain_hash(prev, body)
        get = f.get
        record_id = f["id"]
        rows.append((record_id, node_id, seq, f["kind"], time_param(f["ts"]),
                     column_text(get("customer_id"), CUSTOMER_ID_LEN), get("decision"),
                     get("status"), column_text(get("model"), MODEL_LEN), get("origin_country"),
                     get("origin_region"), get("decision_id"), body.decode(), prev, digest))
        for rule_id in p.rule_ids:
            rule_rows.append((rule_id, record_id))
        prev = digest
        accepted.append(p)
        snap = p.snapshot
        if snap is not None and snap.sha256 not in stored:
            snapshots[snap.sha256] = snap.text
    return Built(BatchWrite(node_id, owner, old_seq, seq, prev, now, rows, rule_rows,
                            snapshots=list(snapshots.items())), accepted, refused)


SNAPSHOT_COLS = ("sha256", "body", "created_at")
INSERT_SNAPSHOT = ("INSERT INTO audit_ownership_snapshots (sha256, body, created_at) "
                   "VALUES ({}) ON CONFLICT (sha256) DO NOTHING")
"""Portable upsert (SQLite 3.24+, PostgreSQL): a tree another writer stored
first is already durable, and names the same bytes (content-addressed)."""


async def commit_core(conn: AsyncConnection, b: BatchWrite) -> None:
    """The portable path (PostgreSQL): Core statements, executemany inserts."""
    async with conn.begin():
        result = await conn.execute(
            update(audit_nodes)
            .where(audit_nodes.c.node_id == b.node_id, audit_nodes.c.owner == b.owner,
                   audit_nodes.c.last_seq == b.old_seq)
            .values(last_seq=b.new_seq, last_hash=b.new_hash, heartbeat_at=b.now)
        )
        if result.rowcount != 1:
            raise ChainConflict(f"chain {b.node_id} moved or was taken over")
        if b.rows:
            await conn.execute(insert(audit_records), [dict(zip(RECORD_COLS, r, strict=True))
                                                       for r in b.rows])
        if b.rule_rows:
            await conn.execute(insert(audit_decision_rules),
                               [dict(zip(RULE_COLS, r, strict=True)) for r in b.rule_rows])
        if b.snapshots:
            await conn.execute(
                text(INSERT_SNAPSHOT.format(", ".join(f":{c}" for c in SNAPSHOT_COLS))),
                [{"sha256": d, "body": t, "created_at": b.now} for d, t in b.snapshots])
        if b.checkpoint:
            await conn.execute(insert(audit_checkpoints), [b.checkpoint])
