"""Reading the decision log: filtered pages (keyset on id), one record with its
outcomes, and the replay stream ``gateway policy impact`` re-decides.

Pages are ``WHERE <filters> AND id > :cursor ORDER BY id LIMIT n``: an index
range scan on ``(filter column, id)``, stable under concurrent inserts (a page
never repeats or skips a record that existed when it was read).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.chain import parse_body, utc
from gateway.audit.citizenship_filter import HasCitizenship
from gateway.audit.ownership_snapshots import (
    inline_tree,
    named_digest,
    snapshot_texts,
    snapshot_view,
)
from gateway.audit.record import REPORT_INDEX_PREFIX
from gateway.audit.tables import audit_decision_rules, audit_records

MAX_LIMIT = 1000
REPLAY_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class DecisionFilters:
    customer_id: str | None = None
    decision: Literal["allow", "deny"] | None = None
    rule_id: str | None = None
    """A rule that decided (``rule_ids``)."""
    report_rule_id: str | None = None
    """A report-mode rule that matched (``report_rule_ids``): kept apart from
    ``rule_id`` so a filter by rule never mixes what decided with what was only
    observed."""
    model: str | None = None
    origin: str | None = None
    """A country (``DE``) or an ISO 3166-2 region (``UA-43``)."""
    citizenship: str | None = None
    """A country the principal is a citizen of (one of ``citizenships``)."""
    from_ts: datetime | None = None
    to_ts: datetime | None = None
    """Exclusive upper bound."""

    @property
    def narrows(self) -> bool:
        """True when the filters pick records by content, not only by time."""
        return any((self.customer_id, self.decision, self.rule_id, self.report_rule_id,
                    self.model, self.origin, self.citizenship))


def record_view(row: Any) -> dict[str, Any]:
    """A record as the API shows it: its hashed fields plus ``prev_hash`` and ``hash``."""
    item = parse_body(row.body)
    item["prev_hash"] = row.prev_hash
    item["hash"] = row.hash
    return item


def decisions_query(filters: DecisionFilters) -> tuple[Select[Any], Any]:
    """The filtered select of decision rows and the id column to page on."""
    t = audit_records
    keys = [k for k in (filters.rule_id, filters.report_rule_id and
                        REPORT_INDEX_PREFIX + filters.report_rule_id) if k]
    query = select(t)
    id_col = t.c.id
    for n, key in enumerate(keys):
        # Both filters: the side index joined twice, once per key.
        dr = audit_decision_rules if n == 0 else audit_decision_rules.alias("report_rules")
        query = query.join(dr, dr.c.decision_id == t.c.id).where(dr.c.rule_id == key)
        # Page in the order of whichever index drives the plan: the rule index when
        # one key is the only filter, else the record's (column, id) index; the two
        # ids are equal by the join, but a mismatched ORDER BY forces a full sort.
        id_col = dr.c.decision_id
    query = query.where(t.c.kind == "decision")
    other = (filters.customer_id, filters.model, filters.decision, filters.origin,
             filters.citizenship)
    if len(keys) > 1 or any(v is not None for v in other):
        id_col = t.c.id
    if filters.customer_id is not None:
        query = query.where(t.c.customer_id == filters.customer_id)
    if filters.decision is not None:
        query = query.where(t.c.decision == filters.decision)
    if filters.model is not None:
        query = query.where(t.c.model == filters.model)
    if filters.origin is not None:
        origin = filters.origin.upper()
        if "-" in origin:
            # The country column is indexed; the region narrows within it.
            query = query.where(t.c.origin_country == origin[:2], t.c.origin_region == origin)
        else:
            query = query.where(t.c.origin_country == origin)
    if filters.citizenship is not None:
        query = query.where(HasCitizenship(filters.citizenship))
    if filters.from_ts is not None:
        query = query.where(t.c.ts >= utc(filters.from_ts))
    if filters.to_ts is not None:
        query = query.where(t.c.ts < utc(filters.to_ts))
    return query, id_col


async def list_decisions(
    sessions: async_sessionmaker[AsyncSession],
    filters: DecisionFilters,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of decisions in id order and the cursor of the next (None at the end)."""
    limit = max(1, min(limit, MAX_LIMIT))
    query, id_col = decisions_query(filters)
    if cursor:
        query = query.where(id_col > cursor)
    query = query.order_by(id_col).limit(limit + 1)
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    items = [record_view(r) for r in rows[:limit]]
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return items, next_cursor


async def get_decision(
    sessions: async_sessionmaker[AsyncSession], record_id: str
) -> dict[str, Any] | None:
    """A record (any kind) by id; a decision comes with its ``outcomes`` (in id order)."""
    async with sessions() as session:
        row = (await session.execute(
            select(audit_records).where(audit_records.c.id == record_id)
        )).first()
        if row is None:
            return None
        item = record_view(row)
        if row.kind == "decision":
            outcomes = (await session.execute(
                select(audit_records)
                .where(audit_records.c.decision_id == record_id)
                .order_by(audit_records.c.id)
            )).all()
            item["outcomes"] = [record_view(o) for o in outcomes]
    # A tree the record names by digest, shown with it (like ``outcomes``: not hashed).
    snapshot = await snapshot_view(sessions, item) if row.kind == "decision" else None
    if snapshot is not None:
        item["ownership_snapshot"] = snapshot
    return item


async def iter_decisions(
    sessions: async_sessionmaker[AsyncSession],
    filters: DecisionFilters,
    chunk: int = REPLAY_CHUNK,
) -> AsyncIterator[Any]:
    """Every matching decision row in id order, in chunks of short queries
    (bounded memory, no long-lived read transaction)."""
    cursor: str | None = None
    base, id_col = decisions_query(filters)
    while True:
        query = base if cursor is None else base.where(id_col > cursor)
        async with sessions() as session:
            rows = (await session.execute(query.order_by(id_col).limit(chunk))).all()
        for row in rows:
            yield row
        if len(rows) < chunk:
            return
        cursor = str(rows[-1].id)


async def iter_replay_facts(
    sessions: async_sessionmaker[AsyncSession],
    since: datetime,
    until: datetime | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Recorded decisions with ``ts`` in ``[since, until)`` for ``gateway policy impact``.

    Each item is the record's hashed fields (``id``, ``ts``, ``decision``,
    ``rule_ids``, ``facts``, ``model``, ...), as in a JSONL export, with an
    ownership tree the record names by digest put back in (``inline_tree``).
    """
    filters = DecisionFilters(from_ts=since, to_ts=until)
    texts: dict[str, str] = {}
    async for row in iter_decisions(sessions, filters):
        item = parse_body(row.body)
        digest = named_digest(item)
        if digest is not None:
            # The tree the record names, put back for the replay (one read per tree).
            if digest not in texts:
                texts.update(await snapshot_texts(sessions, [digest]))
            inline_tree(item, texts)
        yield item


async def policy_reloads(
    sessions: async_sessionmaker[AsyncSession], since: datetime
) -> list[dict[str, Any]]:
    """The ``policy_reload`` records with ``ts`` from ``since``, oldest first.

    ``gateway policy impact`` reads which version was loaded when: after a
    rollback no request has followed yet, the newest decision still names
    the withdrawn bundle. Served by the partial index on reload records.
    """
    t = audit_records
    query = select(t.c.body).where(t.c.kind == "policy_reload", t.c.ts >= since).order_by(t.c.id)
    async with sessions() as session:
        return [parse_body(body) for (body,) in (await session.execute(query)).all()]


POLICY_EVENT_KINDS = ("policy_reload", "policy_refused")


async def policy_events(
    sessions: async_sessionmaker[AsyncSession], since: datetime
) -> list[tuple[datetime, str, str, dict[str, Any]]]:
    """``(ts, node_id, kind, payload)`` of each bundle load and refused reload
    from ``since``, in log order: which version was in force when."""
    t = audit_records
    query = (
        select(t.c.ts, t.c.node_id, t.c.kind, t.c.body)
        .where(t.c.kind.in_(POLICY_EVENT_KINDS), t.c.ts >= since)
        .order_by(t.c.id)
    )
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    out = []
    for ts, node, kind, body in rows:
        payload = parse_body(body).get("payload")
        out.append((utc(ts), str(node), str(kind), payload if isinstance(payload, dict) else {}))
    return out
