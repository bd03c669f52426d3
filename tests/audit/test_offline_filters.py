"""Offline verify holds a filtered export to the filters its manifest declares.

The manifest is not signed: a holder of a full export could relabel it
``"mode": "filtered"`` and then delete records, since a filtered export's gaps
are expected and its tail is not judged. Verify therefore checks that a
filtered export names a content filter and that every record satisfies it:
the relabelled file then either fails, or honestly reads as the selection it
now claims to be.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.export import Exporter
from gateway.audit.offline import verify_export
from gateway.audit.query import DecisionFilters
from gateway.audit.verify import Problem
from gateway.audit.writer import AuditWriter
from tests.audit.conftest import make_record


@pytest.fixture
async def filled(writer: AuditWriter) -> AuditWriter:
    """45 decisions (mixed customers, verdicts, origins, models), checkpoints every 10."""
    for i in range(45):
        region = "UA-43" if i % 7 == 0 else None
        await writer.record(make_record(
            i, origin_country="UA" if region else ("DE" if i % 2 else "US"),
            origin_region=region, citizenships=["CN", "US"] if i % 4 == 0 else ["DE"]))
    return writer


async def _export(sessions: async_sessionmaker[AsyncSession], path: Path,
                  filters: DecisionFilters) -> None:
    exporter = Exporter(sessions, filters, "jsonl", chunk=8)
    with path.open("wb") as fh:
        async for line in exporter.lines():
            fh.write(line)


def _verify(path: Path, writer: AuditWriter) -> list[Problem]:
    report = verify_export(path, trusted_keys=[writer.signer.public_raw])
    for p in report.problems:
        print(p.kind, p.seq, p.message)
    return report.problems


def _relabel(path: Path, drop_line: int, **manifest_fixes: Any) -> None:
    """The forger: one record removed, the manifest relabelled and its figures fixed up."""
    lines = path.read_bytes().splitlines()
    records, manifest = lines[:-1], orjson.loads(lines[-1])
    del records[drop_line]
    data = b"".join(r + b"\n" for r in records)
    manifest.update(manifest_fixes, record_count=len(records),
                    data_sha256=hashlib.sha256(data).hexdigest())
    for node in manifest["nodes"].values():
        node["count"] = len(records)
    path.write_bytes(data + orjson.dumps(manifest) + b"\n")


async def test_full_export_relabelled_filtered_without_a_filter_fails(
    filled: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    path = tmp_path / "all.jsonl"
    await _export(sessions, path, DecisionFilters())
    assert _verify(path, filled) == []
    _relabel(path, 17, mode="filtered", filters={})
    problems = _verify(path, filled)
    assert [p.kind for p in problems] == ["filter_mismatch"]
    assert "names no content filter" in problems[0].message


async def test_full_export_relabelled_with_an_unknown_mode_fails(
    filled: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    """Gap and tail checks apply to ``mode == "full"``: any other word must not skip them."""
    path = tmp_path / "all.jsonl"
    await _export(sessions, path, DecisionFilters())
    _relabel(path, 17, mode="partial")
    problems = _verify(path, filled)
    assert [p.kind for p in problems] == ["filter_mismatch"]
    assert "mode 'partial'" in problems[0].message


async def test_records_outside_the_declared_filter_are_named(
    filled: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    """Relabelled as ``decision=deny``: every allow it still holds is named by seq."""
    path = tmp_path / "all.jsonl"
    await _export(sessions, path, DecisionFilters())
    _relabel(path, 17, mode="filtered", filters={"decision": "deny"})
    problems = _verify(path, filled)
    allows = [i + 1 for i in range(45) if i % 3 and i != 17]
    assert [(p.kind, p.seq) for p in problems] == [("filter_mismatch", s) for s in allows]
    assert "decision is 'allow', the manifest's filter says 'deny'" in problems[0].message


@pytest.mark.parametrize("filters", [
    DecisionFilters(customer_id="cust-2"),
    DecisionFilters(decision="deny", model="fable-5"),
    DecisionFilters(rule_id="directive-frontier-us-persons-only"),
    DecisionFilters(origin="UA-43"),
    DecisionFilters(origin="UA"),
    DecisionFilters(citizenship="CN"),
    DecisionFilters(customer_id="cust-1", from_ts=datetime.now(UTC) - timedelta(hours=1),
                    to_ts=datetime.now(UTC) + timedelta(hours=1)),
])
async def test_honest_filtered_exports_still_verify(
    filled: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
    filters: DecisionFilters,
) -> None:
    path = tmp_path / "some.jsonl"
    await _export(sessions, path, filters)
    assert path.read_bytes().count(b"\n") > 1  # the selection is not empty
    assert _verify(path, filled) == []
