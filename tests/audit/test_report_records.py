"""Decision records with ``report_rule_ids`` next to records written before them.

``tests/data/audit_v1`` holds a log and its exports written by the gateway as
it was before report mode (version 1 decision records, no report fields; see
its make_fixture.py). Here that log is loaded and the current writer continues
its chain with version 2 records, some naming report-mode matches. Then: the
mixed log verifies (database, HTTP route, CLI, offline exports old and new),
any edit of ``report_rule_ids`` or of its side-index rows is found, and the
decision list filters by report-mode rule.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import DateTime, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from gateway.admin import audit as audit_routes
from gateway.admin import decisions as decision_routes
from gateway.audit.export import CSV_COLUMNS, CSV_COLUMNS_V1, Exporter
from gateway.audit.offline import verify_export
from gateway.audit.query import DecisionFilters, list_decisions
from gateway.audit.record import DecisionRecord
from gateway.audit.signing import Signer, load_signer
from gateway.audit.tables import (
    audit_checkpoints,
    audit_decision_rules,
    audit_keys,
    audit_nodes,
    audit_records,
)
from gateway.audit.verify import VerifyReport, verify_log
from gateway.audit.writer import AuditWriter
from gateway.cli.audit import app as audit_cli
from gateway.db.base import Base
from gateway.db.session import create_engine
from gateway.settings import Settings
from tests.audit.conftest import make_record, make_settings
from tests.audit.test_routes import _Services
from tests.support.identity_app import admin_tokens, make_app

V1 = Path(__file__).resolve().parents[1] / "data" / "audit_v1"
KEY = base64.b64encode(hashlib.sha256(b"gateway test key: audit v1 fixture").digest()).decode()
DRAFT = "draft-directive"
LEGACY_RECORDS = 7  # six decisions and an outcome


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return make_settings(db_path, audit_signing_key=KEY)


async def load_v1_log(engine: AsyncEngine) -> None:
    """Insert the version 1 log's rows as the old gateway left them."""
    dump = orjson.loads((V1 / "log.json").read_bytes())
    tables: tuple[Table, ...] = (audit_records, audit_decision_rules, audit_nodes,
                                 audit_checkpoints, audit_keys)
    async with engine.begin() as conn:
        for table in tables:
            times = {c.name for c in table.columns if isinstance(c.type, DateTime)}
            rows = [{k: datetime.fromisoformat(v) if k in times and v else v
                     for k, v in row.items()} for row in dump[table.name]]
            await conn.execute(insert(table), rows)


async def continue_chain(engine: AsyncEngine, settings: Settings) -> list[DecisionRecord]:
    """The current writer extends the old chain: three report matches among six."""
    writer = AuditWriter(engine, settings, load_signer(settings))
    await writer.start()
    new = []
    for i in range(6):
        reported = [DRAFT] if i % 2 else []
        rec = make_record(i, report_rule_ids=reported,
                          report_reasons=["Draft directive."] if reported else [])
        await writer.record(rec)
        new.append(rec)
    await writer.stop()
    return new


@pytest.fixture
async def mixed(engine: AsyncEngine, settings: Settings) -> list[DecisionRecord]:
    await load_v1_log(engine)
    return await continue_chain(engine, settings)


async def _verify(engine: AsyncEngine, signer: Signer) -> VerifyReport:
    report = await verify_log(engine, trusted_keys=[signer.public_raw], chunk_size=4)
    for p in report.problems:
        print(p.kind, p.seq, p.message)
    return report


async def _body(engine: AsyncEngine, record_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(audit_records.c.body)
                                  .where(audit_records.c.id == record_id))).one()
    body: dict[str, Any] = orjson.loads(row.body)
    return body


async def test_a_log_of_old_and_new_records_verifies(
    mixed: list[DecisionRecord], engine: AsyncEngine, signer: Signer
) -> None:
    report = await _verify(engine, signer)
    assert report.ok
    assert [(n.records, n.first_seq, n.last_seq) for n in report.nodes] == [(13, 1, 13)]
    async with engine.connect() as conn:
        bodies = [orjson.loads(r.body) for r in (await conn.execute(
            select(audit_records.c.body).where(audit_records.c.kind == "decision")
            .order_by(audit_records.c.seq))).all()]
    assert [b["version"] for b in bodies] == [1] * 6 + [2] * 6
    assert all("report_rule_ids" not in b for b in bodies[:6])
    assert [b["report_rule_ids"] for b in bodies[6:]] == [[], [DRAFT]] * 3
    assert bodies[7]["report_reasons"] == ["Draft directive."]


async def test_an_edit_of_report_rule_ids_is_found(
    mixed: list[DecisionRecord], engine: AsyncEngine, signer: Signer
) -> None:
    target = mixed[1]
    body = await _body(engine, target.id)
    for forged in ([], ["another-rule"]):
        text = orjson.dumps({**body, "report_rule_ids": forged},
                            option=orjson.OPT_SORT_KEYS).decode()
        async with engine.begin() as conn:
            await conn.execute(update(audit_records).where(audit_records.c.id == target.id)
                               .values(body=text))
        report = await _verify(engine, signer)
        assert report.first is not None
        assert (report.first.kind, report.first.record_id) == ("edited", target.id)


async def test_the_report_side_index_is_held_to_the_bodies(
    mixed: list[DecisionRecord], engine: AsyncEngine, signer: Signer
) -> None:
    dr = audit_decision_rules
    async with engine.connect() as conn:
        keys = {r.rule_id for r in (await conn.execute(
            select(dr.c.rule_id).where(dr.c.decision_id == mixed[1].id))).all()}
    assert keys == {*mixed[1].rule_ids, f"report:{DRAFT}"}
    async with engine.begin() as conn:  # hide a report match from ?report_rule_id=
        await conn.execute(delete(dr).where(dr.c.decision_id == mixed[1].id,
                                            dr.c.rule_id == f"report:{DRAFT}"))
    report = await _verify(engine, signer)
    assert report.first is not None and report.first.kind == "rule_index"
    assert report.first.record_id == mixed[1].id and "lacks 'report:" in report.first.message
    async with engine.begin() as conn:  # restore it, and invent one on a version 1 record
        await conn.execute(insert(dr).values(rule_id=f"report:{DRAFT}", decision_id=mixed[1].id))
        old = (await conn.execute(select(audit_records.c.id).where(audit_records.c.seq == 2))
               ).scalar_one()
        await conn.execute(insert(dr).values(rule_id=f"report:{DRAFT}", decision_id=old))
    report = await _verify(engine, signer)
    assert [(p.kind, p.record_id) for p in report.problems] == [("rule_index", old)]
    assert "does not name" in report.problems[0].message


async def test_filters_keep_deciding_and_report_rules_apart(
    mixed: list[DecisionRecord], sessions: async_sessionmaker[AsyncSession]
) -> None:
    async def ids(**kw: Any) -> list[str]:
        items, _ = await list_decisions(sessions, DecisionFilters(**kw), limit=2)
        out = [i["id"] for i in items]
        # Page on, to check the keyset cursor of the joined queries too.
        items, cursor = await list_decisions(sessions, DecisionFilters(**kw), limit=2)
        while cursor is not None:
            items, cursor = await list_decisions(sessions, DecisionFilters(**kw), cursor, 2)
            out.extend(i["id"] for i in items)
        return out

    reported = [r.id for r in mixed if r.report_rule_ids]
    assert await ids(report_rule_id=DRAFT) == reported
    assert await ids(rule_id=DRAFT) == []
    both = [r.id for r in mixed if r.report_rule_ids and "tier-entitlement" in r.rule_ids]
    assert await ids(report_rule_id=DRAFT, rule_id="tier-entitlement") == both
    denied = [r.id for r in mixed if r.report_rule_ids and r.decision == "deny"]
    assert await ids(report_rule_id=DRAFT, decision="deny") == denied


async def test_routes_show_filter_and_verify(
    mixed: list[DecisionRecord], settings: Settings, engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession], signer: Signer,
) -> None:
    writer = AuditWriter(engine, settings, signer)  # verify's signer; not started
    clear = await admin_tokens(sessions, ("auditor",), "t")
    auth = {"authorization": f"Bearer {clear['auditor']}"}
    app = make_app(_Services(settings, engine, sessions, writer),  # type: ignore[arg-type]
                   decision_routes.router, audit_routes.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as c:
        listed = (await c.get("/admin/v1/decisions", params={"report_rule_id": DRAFT},
                              headers=auth)).json()["items"]
        assert [i["id"] for i in listed] == [r.id for r in mixed if r.report_rule_ids]
        one = (await c.get(f"/admin/v1/decisions/{mixed[1].id}", headers=auth)).json()
        assert one["report_rule_ids"] == [DRAFT] and one["version"] == 2
        assert (await c.get("/admin/v1/audit/verify", headers=auth)).json()["ok"] is True
        body = await _body(engine, mixed[3].id)
        async with engine.begin() as conn:
            await conn.execute(update(audit_records).where(audit_records.c.id == mixed[3].id)
                               .values(body=orjson.dumps({**body, "report_rule_ids": []},
                                                         option=orjson.OPT_SORT_KEYS).decode()))
        doc = (await c.get("/admin/v1/audit/verify", headers=auth)).json()
    assert doc["ok"] is False and doc["first_problem"]["kind"] == "edited"
    assert doc["first_problem"]["record_id"] == mixed[3].id


def test_cli_verify_passes_then_finds_the_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "gw.db"
    settings = make_settings(db, audit_signing_key=KEY)

    async def build() -> list[DecisionRecord]:
        engine = create_engine(settings)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await load_v1_log(engine)
        new = await continue_chain(engine, settings)
        await engine.dispose()
        return new

    new = asyncio.run(build())
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.setenv("GATEWAY_AUDIT_SIGNING_KEY", KEY)
    runner = CliRunner()
    ok = runner.invoke(audit_cli, ["verify"])
    assert ok.exit_code == 0, ok.output
    reported = runner.invoke(audit_cli, ["export", "--report-rule", DRAFT])
    assert reported.exit_code == 0, reported.output
    lines = [orjson.loads(x) for x in reported.stdout.splitlines() if x.strip()]
    assert [x["id"] for x in lines[:-1]] == [r.id for r in new if r.report_rule_ids]
    assert lines[-1]["filters"] == {"report_rule_id": DRAFT}
    raw = sqlite_body(db, new[5].id)
    edited = raw.replace(f'"report_rule_ids":["{DRAFT}"]', '"report_rule_ids":[]')
    assert edited != raw
    sqlite_set_body(db, new[5].id, edited)
    broken = runner.invoke(audit_cli, ["verify"])
    assert broken.exit_code == 1 and "edited" in broken.output


def sqlite_body(db: Path, record_id: str) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT body FROM audit_records WHERE id = ?",
                                (record_id,)).fetchone()[0])


def sqlite_set_body(db: Path, record_id: str, body: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_records SET body = ? WHERE id = ?", (body, record_id))


def test_exports_written_before_report_mode_still_verify(signer: Signer) -> None:
    for name in ("export.jsonl", "export.csv"):
        report = verify_export(V1 / name, trusted_keys=[signer.public_raw])
        assert report.ok, [p.message for p in report.problems]
        assert report.records == report.proven == LEGACY_RECORDS
    with (V1 / "export.csv").open(newline="") as fh:
        assert tuple(next(csv.reader(fh))) == CSV_COLUMNS_V1


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_new_exports_carry_and_bind_report_rule_ids(
    fmt: str, mixed: list[DecisionRecord], sessions: async_sessionmaker[AsyncSession],
    signer: Signer, tmp_path: Path,
) -> None:
    path = tmp_path / f"all.{fmt}"
    exporter = Exporter(sessions, DecisionFilters(), fmt)  # type: ignore[arg-type]
    with path.open("wb") as fh:
        async for line in exporter.lines():
            fh.write(line)
    manifest_path = path.with_name(path.name + ".manifest.json")
    if fmt == "csv":
        manifest_path.write_bytes(orjson.dumps(exporter.manifest))
    assert verify_export(path, trusted_keys=[signer.public_raw]).ok
    text = path.read_text(encoding="utf-8")
    if fmt == "jsonl":
        forged = text.replace(f'"report_rule_ids":["{DRAFT}"]', '"report_rule_ids":[]', 1)
        manifest = orjson.loads(forged.splitlines()[-1])
        data = "".join(line + "\n" for line in forged.splitlines()[:-1])
        manifest["data_sha256"] = hashlib.sha256(data.encode()).hexdigest()  # fixed up
        path.write_text(data + orjson.dumps(manifest).decode() + "\n", encoding="utf-8")
        kinds = {(p.kind, p.record_id) for p in verify_export(
            path, trusted_keys=[signer.public_raw]).problems}
        assert ("edited", mixed[1].id) in kinds
        return
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    col = rows[0].index("report_rule_ids")
    target = next(i for i, r in enumerate(rows) if r[col] == f'["{DRAFT}"]')
    assert [r[col] for r in rows[1:LEGACY_RECORDS + 1]] == [""] * LEGACY_RECORDS  # version 1
    rows[target][col] = "[]"  # what the auditor reads, not what was hashed
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    manifest = dict(exporter.manifest, data_sha256=hashlib.sha256(
        buf.getvalue().encode()).hexdigest())
    manifest_path.write_bytes(orjson.dumps(manifest))
    problems = verify_export(path, trusted_keys=[signer.public_raw]).problems
    assert [p.kind for p in problems] == ["column_mismatch"]
    assert "'report_rule_ids' differ" in problems[0].message


def test_the_writer_and_verify_share_the_index_keys() -> None:
    rec = make_record(1, rule_ids=["a"], report_rule_ids=["b", "c"])
    assert rec.index_keys() == ["a", "report:b", "report:c"]
