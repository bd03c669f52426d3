"""Offline export verification against a careful forger: one who edits what an
auditor reads and then fixes up every unsigned figure of the manifest."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.export import Exporter, ExportFormat
from gateway.audit.offline import verify_export
from gateway.audit.query import DecisionFilters
from gateway.audit.verify import Problem
from gateway.audit.writer import AuditWriter
from tests.audit.conftest import make_record

NODE = "test-node"


@pytest.fixture
async def filled(writer: AuditWriter) -> AuditWriter:
    """45 decisions: checkpoints at seq 10, 20, 30, 40; five records after the last."""
    for i in range(45):
        await writer.record(make_record(i))
    return writer


async def _export(sessions: async_sessionmaker[AsyncSession], path: Path,
                  fmt: ExportFormat) -> dict[str, Any]:
    exporter = Exporter(sessions, DecisionFilters(), fmt, chunk=8)
    with path.open("wb") as fh:
        async for line in exporter.lines():
            fh.write(line)
    if fmt == "csv":
        _manifest_path(path).write_bytes(orjson.dumps(exporter.manifest))
    return exporter.manifest


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def _verify(path: Path, writer: AuditWriter) -> list[Problem]:
    report = verify_export(path, trusted_keys=[writer.signer.public_raw])
    for p in report.problems:
        print(p.kind, p.seq, p.message)
    return report.problems


def _write_csv(path: Path, rows: list[list[str]], manifest: dict[str, Any]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    data = buf.getvalue().encode("utf-8")
    path.write_bytes(data)
    manifest["data_sha256"] = hashlib.sha256(data).hexdigest()  # the forger recomputes it
    _manifest_path(path).write_bytes(orjson.dumps(manifest))


async def test_csv_readable_columns_must_match_the_hashed_record(
    filled: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    path = tmp_path / "all.csv"
    manifest = await _export(sessions, path, "csv")
    assert _verify(path, filled) == []
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    header = rows[0]
    target = next(i for i, r in enumerate(rows) if r[header.index("decision")] == "deny")
    row = rows[target]
    row[header.index("decision")] = "allow"
    row[header.index("status")] = "200"
    row[header.index("rule_ids")] = '["tier-entitlement"]'
    _write_csv(path, rows, manifest)
    problems = _verify(path, filled)
    assert [(p.kind, p.seq) for p in problems] == [("column_mismatch", target)]
    assert f"line {target + 1}:" in problems[0].message
    assert "'decision', 'status', 'rule_ids' differ" in problems[0].message


async def test_csv_header_must_be_the_export_columns(
    filled: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    """Swapping two column names makes each show the other's value."""
    path = tmp_path / "all.csv"
    manifest = await _export(sessions, path, "csv")
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    a, b = rows[0].index("customer_id"), rows[0].index("key_id")
    rows[0][a], rows[0][b] = rows[0][b], rows[0][a]
    _write_csv(path, rows, manifest)
    problems = _verify(path, filled)
    assert problems and problems[0].kind == "column_mismatch"
    assert "line 1: the header" in problems[0].message


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_manifest_without_its_digest_fails(
    filled: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
    fmt: ExportFormat,
) -> None:
    path = tmp_path / f"all.{fmt}"
    manifest = await _export(sessions, path, fmt)
    del manifest["data_sha256"]
    if fmt == "csv":
        _manifest_path(path).write_bytes(orjson.dumps(manifest))
    else:
        lines = path.read_bytes().splitlines(keepends=True)
        lines[-1] = orjson.dumps({"kind": "manifest", **manifest}) + b"\n"
        path.write_bytes(b"".join(lines))
    problems = _verify(path, filled)
    assert [p.kind for p in problems] == ["edited"]
    assert "no data_sha256" in problems[0].message


def _records_and_manifest(path: Path) -> tuple[list[bytes], dict[str, Any]]:
    lines = path.read_bytes().splitlines()
    manifest = orjson.loads(lines[-1])
    assert manifest["kind"] == "manifest"
    return lines[:-1], manifest


def _write_jsonl(path: Path, records: list[bytes], manifest: dict[str, Any],
                 **node_fixes: Any) -> None:
    """The forger's fix-up: count, digest and the node's figures made to fit ``records``."""
    data = b"".join(r + b"\n" for r in records)
    manifest["record_count"] = len(records)
    manifest["data_sha256"] = hashlib.sha256(data).hexdigest()
    manifest["nodes"][NODE].update(node_fixes)
    path.write_bytes(data + orjson.dumps(manifest) + b"\n")


async def test_tail_cut_with_the_manifest_fixed_up(
    filled: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    """Records 36..45 removed; every unsigned figure fixed; the checkpoint at 40 stays."""
    path = tmp_path / "all.jsonl"
    await _export(sessions, path, "jsonl")
    records, manifest = _records_and_manifest(path)
    kept = records[:35]
    last = orjson.loads(kept[-1])
    _write_jsonl(path, kept, manifest, last_seq=35, last_hash=last["hash"], count=35)
    problems = _verify(path, filled)
    assert [(p.kind, p.seq) for p in problems] == [("truncated", 36)]
    assert "signed checkpoint at seq 40 but the last record is seq 35" in problems[0].message


async def test_head_cut_while_the_manifest_says_seq_1(
    filled: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    """Records 1..5 removed, count and digest fixed, first_seq 1 / genesis left in place."""
    path = tmp_path / "all.jsonl"
    manifest = await _export(sessions, path, "jsonl")
    assert manifest["nodes"][NODE]["first_seq"] == 1
    records, manifest = _records_and_manifest(path)
    _write_jsonl(path, records[5:], manifest, count=40)
    problems = _verify(path, filled)
    assert [(p.kind, p.seq) for p in problems] == [("truncated", 6)]
    assert "starts at seq 1, the file at seq 6" in problems[0].message


async def test_head_cut_past_a_checkpoint(
    filled: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    """Records 1..12 removed and the start figures fixed up too: the checkpoint at 10,
    which the export includes only when seq 10 is in the file, gives it away."""
    path = tmp_path / "all.jsonl"
    await _export(sessions, path, "jsonl")
    records, manifest = _records_and_manifest(path)
    first = orjson.loads(records[12])
    _write_jsonl(path, records[12:], manifest, count=33, first_seq=13,
                 first_prev_hash=first["prev_hash"])
    problems = _verify(path, filled)
    assert [(p.kind, p.seq) for p in problems] == [("truncated", 10)]
    assert "checkpoint at seq 10 but the first record is seq 13" in problems[0].message
