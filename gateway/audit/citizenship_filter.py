"""``citizenship=XX``: decision records whose principal holds citizenship XX.

An auditor proving that no citizen of a country was served after a directive
took effect needs this filter; the citizenships live only inside the record's
canonical JSON ``body`` (a list, ``"citizenships":["IR","US"]``), not in an
indexed column. So the filter reads the JSON, in each dialect's own way:
SQLite's ``json_each`` and PostgreSQL's ``jsonb`` containment. It scans the
records the other filters leave (the time range uses the ``ts`` index), which
is what an auditor's one-off question can afford; adding an indexed column
would cost every request's commit a b-tree more (docs/benchmarks.md, session 7).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement, literal

from gateway.audit.tables import audit_records


class HasCitizenship(ColumnElement[bool]):
    """True where the record's ``citizenships`` list holds ``code``."""

    inherit_cache = True
    type = Boolean()

    def __init__(self, code: str) -> None:
        self.code = literal(code)


@compiles(HasCitizenship, "sqlite")
def _sqlite(element: HasCitizenship, compiler: SQLCompiler, **kw: Any) -> str:
    body = compiler.process(audit_records.c.body, **kw)
    code = compiler.process(element.code, **kw)
    return (f"EXISTS (SELECT 1 FROM json_each({body}, '$.citizenships') "
            f"WHERE json_each.value = {code})")


@compiles(HasCitizenship, "postgresql")
def _postgresql(element: HasCitizenship, compiler: SQLCompiler, **kw: Any) -> str:
    body = compiler.process(audit_records.c.body, **kw)
    code = compiler.process(element.code, **kw)
    # ``?`` would clash with DBAPI placeholders; jsonb_exists is the same operator.
    return f"jsonb_exists(CAST({body} AS jsonb) -> 'citizenships', {code})"
