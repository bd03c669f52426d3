"""The account-farm report's SQL: aggregations over one window of decisions.

The fields the report links customers by (``client_ip``, ``prompt_sha256``,
``key_id``, ``capabilities``) are not query columns of ``audit_records``: they
live only in the hashed JSON ``body``. They are read with the database's own
JSON functions (``json_extract`` on SQLite, ``->>`` on PostgreSQL) inside
``GROUP BY`` queries, so each body is parsed in C by the database and Python
receives aggregates: one row per (address, customer) pair, one per (shared
prompt, customer) pair, one per cluster member. Nothing here is per record.

Why no column or index was added for them: the report reads every decision of
its window anyway (a ``GROUP BY`` over all of them), which the ``ts`` index
already bounds; an index on the address or the hash would not shorten that
scan, and every index is paid on each audit commit, before a request is
forwarded. Measured figures: ``docs/farms.md``.

Windows are ``ts >= from AND ts < to`` on ``kind = 'decision'`` records with a
customer (a 401 for an unknown key names none: it links nobody).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    and_,
    case,
    cast,
    distinct,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from gateway.audit.chain import utc
from gateway.audit.tables import audit_records

EMPTY_PROMPT_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
"""SHA-256 of no text at all (a body with no strings): never a link, whatever its count."""

MEMBER_CHUNK = 500
"""Customer ids per ``IN (...)`` list: far below SQLite's and asyncpg's bind limits."""

_KEY = re.compile(r"[a-z_][a-z0-9_]*")


class body_text(FunctionElement[str]):
    """A top-level field of a record's JSON ``body``, as text (NULL when absent or null)."""

    type = String()
    inherit_cache = True
    name = "body_text"

    def __init__(self, body: ColumnElement[Any], key: str) -> None:
        # The key is SQL text, not a bound value: PostgreSQL would see a bound key
        # in SELECT and in GROUP BY as two different expressions. So only names.
        if _KEY.fullmatch(key) is None:
            raise ValueError(f"not a record field name: {key!r}")
        super().__init__(body, literal_column(f"'{key}'"))


def _parts(element: body_text, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    body, key = element.clauses.clauses
    return compiler.process(body, **kw), str(getattr(key, "name", "")).strip("'")


@compiles(body_text, "sqlite")
def _body_text_sqlite(element: body_text, compiler: SQLCompiler, **kw: Any) -> str:
    body, key = _parts(element, compiler, **kw)
    return f"json_extract({body}, '$.{key}')"


@compiles(body_text, "postgresql")
def _body_text_postgresql(element: body_text, compiler: SQLCompiler, **kw: Any) -> str:
    # ``json``, not ``jsonb``: the cast only validates the text (no re-encoding),
    # and ``->>`` on an array gives its text as stored, e.g. ["agentic","coding"].
    body, key = _parts(element, compiler, **kw)
    return f"(CAST({body} AS json) ->> '{key}')"


@compiles(body_text)
def _body_text_other(element: body_text, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"the farm report needs SQLite or PostgreSQL, not {compiler.dialect.name}")


@dataclass(frozen=True, slots=True)
class Window:
    from_ts: datetime
    to_ts: datetime
    """Exclusive."""


def _decisions(window: Window) -> ColumnElement[bool]:
    t = audit_records
    return and_(t.c.kind == "decision", t.c.ts >= utc(window.from_ts), t.c.ts < utc(window.to_ts),
                t.c.customer_id.is_not(None))


def address_pairs_query(window: Window) -> Select[Any]:
    """(client_ip or NULL, customer_id, requests) for every pair seen in the window.

    Every pair, not only shared addresses: two customers on neighbouring
    addresses of one /24 or /48 share no address, and IPv6 networks cannot be
    computed portably in SQL. Rows are bounded by distinct pairs, not records.
    """
    t = audit_records
    inner = (select(t.c.customer_id.label("customer"), body_text(t.c.body, "client_ip").label("ip"))
             .where(_decisions(window)).subquery())
    return (select(inner.c.ip, inner.c.customer, func.count().label("n"))
            .group_by(inner.c.ip, inner.c.customer))


def shared_prompts_query(window: Window, max_customers: int) -> Select[Any]:
    """(prompt_sha256, customer_id, requests, customers of that hash) for every hash
    at least two customers sent; for a hash sent by more than ``max_customers``
    only one row (its count, so the report can say what it ignored)."""
    t = audit_records
    inner = (select(t.c.customer_id.label("customer"),
                    body_text(t.c.body, "prompt_sha256").label("h"))
             .where(_decisions(window)).subquery())
    # One pass: group by (hash, customer), then count a hash's customers with a
    # window function over the groups instead of a second scan of the records.
    grouped = (select(inner.c.h, inner.c.customer, func.count().label("n"),
                      func.count().over(partition_by=inner.c.h).label("k"),
                      func.row_number().over(partition_by=inner.c.h,
                                             order_by=inner.c.customer).label("r"))
               .where(inner.c.h.is_not(None), inner.c.h != EMPTY_PROMPT_SHA256)
               .group_by(inner.c.h, inner.c.customer).subquery())
    return (select(grouped.c.h, grouped.c.customer, grouped.c.n, grouped.c.k)
            .where(grouped.c.k >= 2, or_(grouped.c.k <= max_customers, grouped.c.r == 1)))


def _has(capabilities: ColumnElement[str], name: str) -> ColumnElement[bool]:
    # The field is the JSON text of a sorted list of names, e.g. ["agentic","coding"]:
    # a quoted name is an exact element match (names are checked: no quotes in them).
    return capabilities.contains(f'"{name}"', autoescape=True)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def member_figures_query(window: Window, customers: Sequence[str],
                         capabilities: Sequence[str]) -> Select[Any]:
    """Per customer: requests, keys, refusals, first/last seen, and per watched capability
    (then any of them) the requests that carried it. Uses the (customer_id, id) index."""
    t = audit_records
    caps = body_text(t.c.body, "capabilities")
    watched = [_count_if(_has(caps, name)).label(f"cap_{i}") for i, name in enumerate(capabilities)]
    any_watched = _count_if(or_(*(_has(caps, name) for name in capabilities))) if capabilities \
        else literal_column("0")
    return (select(t.c.customer_id, func.count().label("requests"),
                   func.count(distinct(body_text(t.c.body, "key_id"))).label("keys"),
                   _count_if(t.c.status == 403).label("denied"),
                   _count_if(t.c.status == 429).label("rate_limited"),
                   any_watched.label("watched"),
                   func.min(t.c.ts).label("first_seen"), func.max(t.c.ts).label("last_seen"),
                   *watched)
            .where(_decisions(window), t.c.customer_id.in_(customers))
            .group_by(t.c.customer_id))


def member_models_query(window: Window, customers: Sequence[str]) -> Select[Any]:
    t = audit_records
    return (select(t.c.customer_id, t.c.model, func.count().label("n"))
            .where(_decisions(window), t.c.customer_id.in_(customers))
            .group_by(t.c.customer_id, t.c.model))


def member_tokens_query(window: Window, customers: Sequence[str]) -> Select[Any]:
    """Tokens from the outcome records of the members' decisions in the window (an
    outcome written just after ``to`` still counts: it belongs to its decision)."""
    d = audit_records.alias("d")
    o = audit_records.alias("o")
    tokens_in = func.sum(cast(body_text(o.c.body, "tokens_in"), BigInteger))
    tokens_out = func.sum(cast(body_text(o.c.body, "tokens_out"), BigInteger))
    return (select(d.c.customer_id, func.coalesce(tokens_in, 0).label("tokens_in"),
                   func.coalesce(tokens_out, 0).label("tokens_out"))
            .select_from(d.join(o, o.c.decision_id == d.c.id))
            .where(d.c.kind == "decision", d.c.ts >= utc(window.from_ts),
                   d.c.ts < utc(window.to_ts), d.c.customer_id.in_(customers),
                   o.c.kind == "outcome", o.c.decision_id.is_not(None))
            .group_by(d.c.customer_id))


def chunks(items: Sequence[str], size: int = MEMBER_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def rows(conn: AsyncConnection, query: Select[Any]) -> list[Any]:
    return list((await conn.execute(query)).all())
