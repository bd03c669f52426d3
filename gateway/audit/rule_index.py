"""Verify the rule-id side index (``audit_decision_rules``) against the hashed bodies.

The side index is not hashed: it is derived from each decision's ``rule_ids``
(key: the rule id) and ``report_rule_ids`` (key: ``report:<rule id>``) and is
what ``GET /decisions?rule_id=`` / ``?report_rule_id=`` and rule-filtered
exports read. A row deleted from it hides a decision from those queries; a row
added invents a match. So verify holds it to exactly the keys each decision
body calls for (``record.rule_index_keys``: the writer's own function).

Cost, for logs of millions of records: the table's only index is its primary
key ``(rule_id, decision_id)``, so a lookup by decision id alone would scan the
whole table once per chunk. Instead, each chunk of records verify streams is
matched with one query per chunk, ``rule_id IN (every rule id) AND decision_id
BETWEEN min AND max`` of the chunk's ids: one range probe per rule id (a
policy has tens, found once by a loose index scan). Record ids are
time-ordered, so a chunk's id range holds little besides its own records
(with several chains, their interleaved records; rows of those are left to
their own chain's chunk). Rows whose decision is no record at all (foreign)
are found by counting: every row that belongs to a checked record was matched
once, so a table holding more rows than were matched has strays, and only
then is the (costlier) anti-join run to name them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.record import rule_index_keys
from gateway.audit.tables import audit_decision_rules, audit_records

_NAMED_LIMIT = 100
"""At most this many foreign rows are named (and counted beyond that in one number)."""


@dataclass(frozen=True, slots=True)
class RuleIndexProblem:
    message: str
    node_id: str | None
    seq: int | None
    record_id: str | None


@dataclass(slots=True)
class ChunkRecord:
    """A record of the chunk: where it is and the rule ids its hashed body names."""

    node_id: str
    seq: int
    rule_ids: tuple[str, ...]


def expected_rules(body: dict[str, Any]) -> tuple[str, ...]:
    """The side-index rows a record's body calls for, if it is a decision: its
    rule ids and its report matches (none in a version 1 body, which has no
    ``report_rule_ids``)."""
    if body.get("kind") != "decision":
        return ()
    rule_ids = body.get("rule_ids")
    reported = body.get("report_rule_ids")
    return tuple(rule_index_keys(rule_ids if isinstance(rule_ids, list) else [],
                                 reported if isinstance(reported, list) else []))


@dataclass(slots=True)
class RuleIndexCheck:
    """One per verify run: ``start()``, ``check_chunk()`` per chunk, then ``finish()``."""

    report: Callable[[RuleIndexProblem], None]
    rule_ids: set[str] = field(default_factory=set)
    matched: int = 0
    """Side-index rows that belong to a record verify checked."""

    async def start(self, conn: AsyncConnection) -> None:
        """Every distinct rule id, by a loose scan of the primary key (one probe each)."""
        dr = audit_decision_rules
        after: str | None = None
        while True:
            query = select(func.min(dr.c.rule_id))
            if after is not None:
                query = query.where(dr.c.rule_id > after)
            nxt = (await conn.execute(query)).scalar()
            if nxt is None:
                break
            self.rule_ids.add(str(nxt))
            after = str(nxt)
        await conn.rollback()

    async def check_chunk(self, conn: AsyncConnection, records: dict[str, ChunkRecord]) -> None:
        """Compare the side index with the rule ids of ``records`` (by record id)."""
        if not records:
            return
        # Rule ids first used after ``start`` (a live log) are named by the chunk itself.
        wanted = set(self.rule_ids)
        for rec in records.values():
            wanted.update(rec.rule_ids)
        if not wanted:
            return
        dr = audit_decision_rules
        rows = (await conn.execute(
            select(dr.c.rule_id, dr.c.decision_id)
            .where(dr.c.rule_id.in_(sorted(wanted)),
                   dr.c.decision_id >= min(records), dr.c.decision_id <= max(records))
        )).all()
        await conn.rollback()
        found = {(rule_id, decision_id) for rule_id, decision_id in rows
                 if decision_id in records}
        self.matched += len(found)
        expected = {(rule_id, record_id) for record_id, rec in records.items()
                    for rule_id in rec.rule_ids}
        if found != expected:  # the common case is equality: one set comparison per chunk
            self._explain(records, found, expected)

    def _explain(self, records: dict[str, ChunkRecord], found: set[tuple[str, str]],
                 expected: set[tuple[str, str]]) -> None:
        missing: dict[str, list[str]] = {}
        extra: dict[str, list[str]] = {}
        for rule_id, record_id in expected - found:
            missing.setdefault(record_id, []).append(rule_id)
        for rule_id, record_id in found - expected:
            extra.setdefault(record_id, []).append(rule_id)
        for record_id, rec in sorted(records.items(), key=lambda item: item[1].seq):
            if record_id in missing:
                self.report(RuleIndexProblem(
                    f"seq {rec.seq}: the rule index lacks {_names(missing[record_id])} that the "
                    "record names: queries by rule id hide it", rec.node_id, rec.seq, record_id))
            if record_id in extra:
                self.report(RuleIndexProblem(
                    f"seq {rec.seq}: the rule index lists {_names(extra[record_id])} that the "
                    "record does not name: queries by rule id invent it",
                    rec.node_id, rec.seq, record_id))

    async def finish(self, conn: AsyncConnection) -> None:
        """Report side-index rows that belong to no record of the log."""
        dr, t = audit_decision_rules, audit_records
        total = int((await conn.execute(select(func.count()).select_from(dr))).scalar() or 0)
        if total <= self.matched:
            await conn.rollback()
            return
        # More rows than matched: strays, or rows of records verify did not reach
        # (appended since it began); the anti-join tells which.
        stray = ~select(t.c.id).where(t.c.id == dr.c.decision_id).exists()
        count = int((await conn.execute(
            select(func.count()).select_from(dr).where(stray))).scalar() or 0)
        named = (await conn.execute(
            select(dr.c.rule_id, dr.c.decision_id).where(stray)
            .order_by(dr.c.rule_id, dr.c.decision_id).limit(_NAMED_LIMIT)
        )).all()
        await conn.rollback()
        for rule_id, decision_id in named:
            self.report(RuleIndexProblem(
                f"the rule index lists {rule_id!r} for record {decision_id}, which is no record "
                "of the log: queries by rule id invent it", None, None, str(decision_id)))
        if count > len(named):
            self.report(RuleIndexProblem(
                f"{count - len(named)} more rule index rows name no record of the log",
                None, None, None))


def _names(rule_ids: Iterable[str]) -> str:
    return ", ".join(sorted(repr(r) for r in rule_ids))
