"""Streamed exports (JSONL, CSV) with a manifest an auditor verifies offline.

Two modes:
  * **full** (no content filter, only ``from``/``to``): every record of every
    chain whose ``ts`` falls in the range, as whole contiguous ``seq`` runs per
    node (all kinds: decisions, outcomes, events), in ``(node_id, seq)`` order.
    Boundary runs may include a record a few milliseconds outside the range,
    because records commit in queue order, not ``ts`` order, and each run goes
    on to the checkpoint that signs its last record (at most one checkpoint
    interval more), so every record re-hashes to a signed head: proven complete
    and unaltered. Only a chain's newest records, not yet signed when the
    export ran, are chained but unsigned; the manifest carries each run's
    *anchor* (the chain's checkpoint before the run) so that offline verify
    knows how old such a tail may be (``continuity.py``).
  * **filtered** (customer, decision, rule, model, origin): matching decisions
    in id order. Each record re-hashes from its own ``prev_hash`` (internally
    consistent), and one that sits at a checkpoint's ``seq`` matches the signed
    head; but membership in the chain and completeness of the selection are
    not provable without the records in between: use a full export for that.

A JSONL line is the record's hashed fields plus ``prev_hash`` and ``hash``; the
last line is the manifest (``"kind": "manifest"``). A CSV row carries the
same columns, the canonical body in ``record``; its manifest is a sidecar.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.chain import parse_body, utc
from gateway.audit.checkpoints import load_checkpoints
from gateway.audit.ownership_snapshots import snapshot_texts
from gateway.audit.policy_texts import policy_texts
from gateway.audit.query import DecisionFilters, iter_decisions
from gateway.audit.signing import public_pem
from gateway.audit.tables import audit_checkpoints, audit_records
from gateway.identity.ownership_snapshot import DIGEST_KEY

ExportFormat = Literal["jsonl", "csv"]
MANIFEST_VERSION = 1
CSV_COLUMNS = (
    "id", "kind", "ts", "node_id", "seq", "customer_id", "key_id", "effective_tier", "kyc_level",
    "citizenships", "residence", "origin_country", "origin_region", "client_ip", "endpoint",
    "model", "capabilities", "decision", "status", "rule_ids", "reasons", "report_rule_ids",
    "report_reasons", "policy_version", "quota", "prompt_sha256", "decision_id",
    "upstream_status", "tokens_in", "tokens_out", "latency_ms", "error", "payload", "prev_hash",
    "hash", "record",
)
CSV_COLUMNS_V1 = tuple(c for c in CSV_COLUMNS if c not in ("report_rule_ids", "report_reasons"))
"""The columns of CSV exports written before report mode. Offline verify still
accepts them: archived exports must stay verifiable for the retention period."""
CSV_LAYOUTS = (CSV_COLUMNS, CSV_COLUMNS_V1)


@dataclass(slots=True)
class _NodeRange:
    first_seq: int | None = None
    last_seq: int | None = None
    count: int = 0
    contiguous: bool = True
    first_prev_hash: str | None = None
    last_hash: str | None = None


@dataclass(slots=True)
class Exporter:
    """One export: ``plan()`` (optional, for a progress total), then ``lines()``,
    then ``manifest`` is complete."""

    sessions: async_sessionmaker[AsyncSession]
    filters: DecisionFilters
    fmt: ExportFormat = "jsonl"
    chunk: int = 2000
    exported: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)
    _ranges: list[tuple[str, int, int]] | None = None
    _nodes: dict[str, _NodeRange] = field(default_factory=dict)
    _digest: Any = field(default_factory=hashlib.sha256)
    _first_id: str | None = None
    _last_id: str | None = None
    _versions: set[str] = field(default_factory=set)
    _trees: set[str] = field(default_factory=set)

    @property
    def mode(self) -> str:
        return "filtered" if self.filters.narrows else "full"

    async def plan(self) -> int | None:
        """How many records a full export will hold (None for a filtered one)."""
        if self.filters.narrows:
            return None
        self._ranges = await _node_ranges(self.sessions, self.filters)
        return sum(hi - lo + 1 for _, lo, hi in self._ranges)

    async def lines(self) -> AsyncIterator[bytes]:
        """The data lines (CSV: header first); the JSONL manifest line comes last."""
        if self.fmt == "csv":
            yield self._emit(csv_line(CSV_COLUMNS))
        async for row in self._rows():
            self._track(row)
            yield self._emit(self._format(row))
        await self._finish()
        if self.fmt == "jsonl":
            yield orjson.dumps({"kind": "manifest", **self.manifest}) + b"\n"

    def _emit(self, data: bytes) -> bytes:
        self._digest.update(data)
        return data

    async def _rows(self) -> AsyncIterator[Any]:
        if self.filters.narrows:
            async for row in iter_decisions(self.sessions, self.filters, self.chunk):
                yield row
            return
        ranges = self._ranges if self._ranges is not None else await _node_ranges(
            self.sessions, self.filters)
        t = audit_records
        for node_id, lo, hi in ranges:
            after = lo - 1
            while after < hi:
                async with self.sessions() as session:
                    rows = (await session.execute(
                        select(t).where(t.c.node_id == node_id, t.c.seq > after, t.c.seq <= hi)
                        .order_by(t.c.seq).limit(self.chunk)
                    )).all()
                if not rows:
                    break
                for row in rows:
                    yield row
                after = int(rows[-1].seq)

    def _format(self, row: Any) -> bytes:
        if self.fmt == "jsonl":
            # The stored canonical body with the chain fields spliced in: no re-encoding.
            body: str = row.body
            tail = f'"prev_hash":"{row.prev_hash}","hash":"{row.hash}"'
            return (body[:-1] + ("," if len(body) > 2 else "") + tail + "}\n").encode("utf-8")
        values = csv_cells(parse_body(row.body))
        return csv_line((*values, row.prev_hash, row.hash, row.body))

    def _track(self, row: Any) -> None:
        self.exported += 1
        rid = str(row.id)
        self._first_id = self._first_id or rid
        self._last_id = rid
        node = self._nodes.setdefault(str(row.node_id), _NodeRange())
        seq = int(row.seq)
        if node.first_seq is None:
            node.first_seq, node.first_prev_hash = seq, str(row.prev_hash)
        elif node.last_seq is not None and seq != node.last_seq + 1:
            node.contiguous = False
        node.last_seq, node.last_hash = seq, str(row.hash)
        node.count += 1
        version = named_version(str(row.body))
        if version is not None:
            self._versions.add(version)
        tree = named_value(str(row.body), _TREE_KEY)
        if tree is not None:
            self._trees.add(tree)

    async def _finish(self) -> None:
        nodes: dict[str, Any] = {}
        fingerprints: set[str] = set()
        async with self.sessions() as session:
            conn = await session.connection()
            cps = await load_checkpoints(conn)
        for node_id, rng in sorted(self._nodes.items()):
            lo, hi = rng.first_seq or 0, rng.last_seq or 0
            covering = [cp for cp in cps.by_node.get(node_id, [])
                        if (lo <= cp.seq <= hi) or cp.kind == "tombstone"]
            before = [cp for cp in cps.by_node.get(node_id, [])
                      if cp.kind == "checkpoint" and cp.seq < lo and cp.problem is None]
            anchor = before[-1] if before else None  # load_checkpoints orders by seq
            fingerprints.update(cp.key_fingerprint for cp in [*covering, *before[-1:]])
            nodes[node_id] = {**asdict(rng),
                              "checkpoints": [cp.to_manifest() for cp in covering],
                              "anchor": anchor.to_manifest() if anchor else None}
        self.manifest = {
            "manifest_version": MANIFEST_VERSION,
            "generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "mode": self.mode,
            "format": self.fmt,
            "filters": _filters_doc(self.filters),
            "record_count": self.exported,
            "first_id": self._first_id,
            "last_id": self._last_id,
            "data_sha256": self._digest.hexdigest(),
            "hash_rule": "hash = sha256(prev_hash_hex || canonical_json(record minus "
                         "prev_hash, hash)); canonical = sorted keys, no spaces, UTF-8",
            "nodes": nodes,
            "public_keys": {fp: public_pem(cps.keys[fp]) for fp in sorted(fingerprints)
                            if fp in cps.keys},
            # The texts of the policy versions the records name, wherever in the
            # log they were recorded (each proves itself: its SHA-256 is the version).
            "policies": await policy_texts(self.sessions, sorted(self._versions)),
            # The ownership trees records name by digest (``ownership_sha256``),
            # each the canonical JSON that hashes to its digest.
            "ownership_snapshots": await snapshot_texts(self.sessions, self._trees),
        }


async def _node_ranges(
    sessions: async_sessionmaker[AsyncSession], filters: DecisionFilters
) -> list[tuple[str, int, int]]:
    """Per node, the contiguous seq run that covers the time range, up to the
    checkpoint that signs its last record (if one exists yet)."""
    t, c = audit_records, audit_checkpoints
    query = select(t.c.node_id, func.min(t.c.seq), func.max(t.c.seq)).group_by(t.c.node_id)
    if filters.from_ts is not None:
        query = query.where(t.c.ts >= utc(filters.from_ts))
    if filters.to_ts is not None:
        query = query.where(t.c.ts < utc(filters.to_ts))
    async with sessions() as session:
        rows = (await session.execute(query.order_by(t.c.node_id))).all()
        ranges = []
        for node_id, lo, hi in rows:
            signed = (await session.execute(select(func.min(c.c.seq)).where(
                c.c.node_id == node_id, c.c.kind == "checkpoint", c.c.seq >= hi))).scalar()
            ranges.append((str(node_id), int(lo), int(hi if signed is None else signed)))
    return ranges


_VERSION_KEY = '"policy_version":"'
_TREE_KEY = f'"{DIGEST_KEY}":"'


def named_version(body: str) -> str | None:
    """The ``policy_version`` a canonical record body names, read without parsing it
    (the JSONL export never re-encodes a body). In canonical JSON a quote inside a
    string is escaped, so the key with its quotes only appears as a real key."""
    return named_value(body, _VERSION_KEY)


def named_value(body: str, key: str) -> str | None:
    """The string value of ``key`` (given as ``"name":"``) in a canonical body."""
    at = body.find(key)
    if at < 0:
        return None
    start = at + len(key)
    end = body.find('"', start)
    return body[start:end] if end > start else None


def csv_cells(
    item: dict[str, Any], columns: tuple[str, ...] = CSV_COLUMNS, as_text: bool = True
) -> list[str]:
    """A record's readable CSV columns (all but ``prev_hash``, ``hash``, ``record``),
    derived from its hashed body; offline verify re-derives and compares them.
    A field the record lacks (a version 1 decision has no ``report_rule_ids``)
    is an empty cell. ``as_text=False``: the cells as exports wrote them before
    ``FORMULA_STARTS`` were escaped (offline verify accepts archives of those)."""
    return [_cell(item.get(name), as_text) for name in columns[:-3]]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP, CSV injection). The
decision log holds text a client chose (the model name of any request, refused
ones included), and auditors open CSV exports in spreadsheets: a string cell
starting so is written with a leading ``'``, which they show as text. The
hashed ``record`` column and the JSONL export keep the value as it was."""


def _cell(value: Any, as_text: bool = True) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    if isinstance(value, str):
        return "'" + value if as_text and value.startswith(FORMULA_STARTS) else value
    return str(value)


def csv_line(values: tuple[str, ...] | list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode("utf-8")


def _filters_doc(filters: DecisionFilters) -> dict[str, Any]:
    doc = asdict(filters)
    for key in ("from_ts", "to_ts"):
        if doc[key] is not None:
            doc[key] = utc(doc[key]).isoformat().replace("+00:00", "Z")
    return {k: v for k, v in doc.items() if v is not None}
