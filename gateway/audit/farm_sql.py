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
    CompoundSelect,
    Select,
    String,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from gateway.audit.chain import utc
from gateway.audit.tables import audit_records

MEMBER_CHUNK = 500
"""Customer ids per ``IN (...)`` list: far below SQLite's and asyncpg's bind limits."""

_KEY = re.compile(r"[a-z_][a-z0-9_]*")


class parsed_body(FunctionElement[Any]):
    """A record's ``body`` ready for ``json_field``: ``jsonb`` on PostgreSQL, the text on SQLite.

    Parse once, read many: on PostgreSQL every ``CAST(body AS json) ->> key``
    parses the whole body again (that parse is nearly all of the report's
    time there), so a query that reads several fields parses into ``jsonb``
    once, inside a ``_fenced`` subquery, and looks the fields up in it.
    SQLite's ``json_extract`` keeps the last bodies it parsed, so the text is enough.
    """

    type = String()
    inherit_cache = True
    name = "parsed_body"


class json_field(FunctionElement[str]):
    """A top-level field of a ``parsed_body``, as text (NULL when absent or null)."""

    type = String()
    inherit_cache = True
    name = "json_field"

    def __init__(self, json: ColumnElement[Any], key: str) -> None:
        # The key is SQL text, not a bound value: PostgreSQL would see a bound key
        # in SELECT and in GROUP BY as two different expressions. So only names.
        if _KEY.fullmatch(key) is None:
            raise ValueError(f"not a record field name: {key!r}")
        super().__init__(json, literal_column(f"'{key}'"))


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(clause, **kw) for clause in element.clauses.clauses]


@compiles(parsed_body, "sqlite")
def _parsed_sqlite(element: parsed_body, compiler: SQLCompiler, **kw: Any) -> str:
    return _args(element, compiler, **kw)[0]


@compiles(parsed_body, "postgresql")
def _parsed_postgresql(element: parsed_body, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({_args(element, compiler, **kw)[0]} AS jsonb)"


@compiles(json_field, "sqlite")
def _field_sqlite(element: json_field, compiler: SQLCompiler, **kw: Any) -> str:
    json, key = _args(element, compiler, **kw)
    return f"json_extract({json}, '$.{key.strip(chr(39))}')"


@compiles(json_field, "postgresql")
def _field_postgresql(element: json_field, compiler: SQLCompiler, **kw: Any) -> str:
    # ``->>`` on an array gives its JSON text, e.g. ["agentic", "coding"].
    json, key = _args(element, compiler, **kw)
    return f"({json} ->> {key})"


@compiles(parsed_body)
@compiles(json_field)
def _other(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
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


def links_query(window: Window, max_prompt_customers: int) -> CompoundSelect[Any]:
    """One scan of the window for both kinds of link, as (kind, key, customer, n, k):

    - ``address`` rows: (client_ip or NULL, customer, requests, 0) for every
      pair seen. Every pair, not only shared addresses: two customers on
      neighbouring addresses of one /24 or /48 share no address, and IPv6
      networks cannot be computed portably in SQL. Rows are bounded by
      distinct pairs, not records.
    - ``prompt`` rows: (prompt_sha256 or NULL, customer, requests, customers
      of that hash) for every hash at least two customers sent; for a hash
      sent by more than ``max_prompt_customers`` only one row (its count, so
      the report can say what it ignored). NULL and the empty prompt are
      dropped in ``farm_links``: a filter here would be another parse per row.

    One scan, not one per kind: the CTE is read twice, so both SQLite and
    PostgreSQL materialize it (a few short columns per decision) and each body
    is parsed_body once. Measured on 200k decisions this halved the report's time.
    """
    t = audit_records
    bodies = _fenced(select(t.c.customer_id.label("customer"), parsed_body(t.c.body).label("j"))
                     .where(_decisions(window)))
    d = select(bodies.c.customer, json_field(bodies.c.j, "client_ip").label("ip"),
               json_field(bodies.c.j, "prompt_sha256").label("h")).cte("d")
    addresses = (select(literal("address").label("kind"), d.c.ip.label("key"), d.c.customer,
                        func.count().label("n"), literal(0).label("k"))
                 .group_by(d.c.ip, d.c.customer))
    # Group by (hash, customer), then count a hash's customers with a window
    # function over the groups: no second pass for "shared by >= 2".
    grouped = (select(d.c.h, d.c.customer, func.count().label("n"),
                      func.count().over(partition_by=d.c.h).label("k"),
                      func.row_number().over(partition_by=d.c.h,
                                             order_by=d.c.customer).label("r"))
               .group_by(d.c.h, d.c.customer).subquery())
    prompts = (select(literal("prompt"), grouped.c.h, grouped.c.customer, grouped.c.n,
                      grouped.c.k)
               .where(grouped.c.k >= 2,
                      or_(grouped.c.k <= max_prompt_customers, grouped.c.r == 1)))
    return union_all(addresses, prompts)


def _fenced(query: Select[Any]) -> Any:
    """``query`` as a subquery the planner will not merge into the outer one.

    Merged, its ``parsed_body`` column would be substituted into every mention
    outside, each its own parse of the body on PostgreSQL; ``OFFSET 0`` is the
    usual fence (SQLite gets ``LIMIT -1 OFFSET 0``, which likewise stops its
    flattening; it then runs the subquery as a co-routine, streaming).
    """
    return query.offset(0).subquery()


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
    inner = _fenced(select(t.c.customer_id, t.c.ts, t.c.status, parsed_body(t.c.body).label("j"))
                    .where(_decisions(window), t.c.customer_id.in_(customers)))
    caps = json_field(inner.c.j, "capabilities")
    watched = [_count_if(_has(caps, name)).label(f"cap_{i}") for i, name in enumerate(capabilities)]
    any_watched = _count_if(or_(*(_has(caps, name) for name in capabilities))) if capabilities \
        else literal_column("0")
    return (select(inner.c.customer_id, func.count().label("requests"),
                   func.count(distinct(json_field(inner.c.j, "key_id"))).label("keys"),
                   _count_if(inner.c.status == 403).label("denied"),
                   _count_if(inner.c.status == 429).label("rate_limited"),
                   any_watched.label("watched"),
                   func.min(inner.c.ts).label("first_seen"),
                   func.max(inner.c.ts).label("last_seen"), *watched)
            .group_by(inner.c.customer_id))


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
    inner = _fenced(select(d.c.customer_id, parsed_body(o.c.body).label("j"))
                    .select_from(d.join(o, o.c.decision_id == d.c.id))
                    .where(d.c.kind == "decision", d.c.ts >= utc(window.from_ts),
                           d.c.ts < utc(window.to_ts), d.c.customer_id.in_(customers),
                           o.c.kind == "outcome", o.c.decision_id.is_not(None)))
    tokens_in = func.sum(cast(json_field(inner.c.j, "tokens_in"), BigInteger))
    tokens_out = func.sum(cast(json_field(inner.c.j, "tokens_out"), BigInteger))
    return (select(inner.c.customer_id, func.coalesce(tokens_in, 0).label("tokens_in"),
                   func.coalesce(tokens_out, 0).label("tokens_out"))
            .group_by(inner.c.customer_id))


def chunks(items: Sequence[str], size: int = MEMBER_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def rows(conn: AsyncConnection, query: Select[Any] | CompoundSelect[Any]) -> list[Any]:
    return list((await conn.execute(query)).all())
