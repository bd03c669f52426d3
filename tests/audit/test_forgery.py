"""A forger with write access to the database but not the signing key.

They turn a 403 deny into an allow, re-hash every later record, fix the head
row, and delete the signatures that would give them away: every checkpoint,
only the later ones, a single one, or a whole replica's chain. Each must fail
``verify`` (the log was written by the real writer on a real SQLite file two
hours ago; ``audit_checkpoint_seconds`` is 60, so nothing may be unsigned now).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin import audit as audit_routes
from gateway.audit.chain import body_of_export, chain_hash
from gateway.audit.export import Exporter
from gateway.audit.offline import verify_export
from gateway.audit.query import DecisionFilters
from gateway.audit.signing import Signer, public_pem
from gateway.audit.verify import VerifyReport, verify_log
from gateway.audit.writer import AuditWriter
from gateway.settings import Settings
from tests.audit.conftest import make_record, make_settings
from tests.audit.test_routes import _Services
from tests.support.identity_app import admin_tokens, make_app

NODE = "test-node"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return make_settings(db_path, audit_checkpoint_seconds=60.0)


def _past() -> Callable[[], datetime]:
    then = datetime.now(UTC) - timedelta(hours=2)
    return lambda: then


async def _fill(writer_factory: Callable[..., Any], settings: Settings, n: int = 35,
                stop: bool = True) -> AuditWriter:
    """``n`` decisions two hours ago: checkpoints at 0 (genesis), 10, 20, 30 and, at
    stop, a final one at ``n``."""
    clock = _past()
    writer: AuditWriter = await writer_factory(settings, clock=clock)
    for i in range(n):
        await writer.record(make_record(i, ts=clock()))
    if stop:
        await writer.stop()
    return writer


def forge(db: Path, node: str = NODE, drop: str = "all") -> int:
    """The attack of /tmp/p1/forge.py: the first 403 after seq 10 becomes an allow, every
    later record of ``node`` is re-hashed, the head row follows; then checkpoints go:
    ``all``, those ``from`` the forged record on, or ``none``."""
    conn = sqlite3.connect(db)
    target = conn.execute("SELECT min(seq) FROM audit_records WHERE node_id = ? AND seq > 10 "
                          "AND status = 403", (node,)).fetchone()[0]
    rows = conn.execute("SELECT id, seq, body, hash FROM audit_records WHERE node_id = ? "
                        "ORDER BY seq", (node,)).fetchall()
    prev = ""
    for rid, seq, body, stored in rows:
        if seq < target:
            prev = stored
            continue
        if seq == target:
            doc = orjson.loads(body)
            doc.update(decision="allow", status=200, rule_ids=["tier-entitlement"])
            body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()
            conn.execute("UPDATE audit_records SET decision = 'allow', status = 200 WHERE id = ?",
                         (rid,))
            conn.execute("UPDATE audit_decision_rules SET rule_id = 'tier-entitlement' "
                         "WHERE decision_id = ?", (rid,))
        new = chain_hash(prev, body.encode())
        conn.execute("UPDATE audit_records SET body = ?, prev_hash = ?, hash = ? WHERE id = ?",
                     (body, prev, new, rid))
        prev = new
    conn.execute("UPDATE audit_nodes SET last_hash = ? WHERE node_id = ?", (prev, node))
    if drop == "all":
        conn.execute("DELETE FROM audit_checkpoints WHERE node_id = ?", (node,))
    elif drop == "from":
        conn.execute("DELETE FROM audit_checkpoints WHERE node_id = ? AND seq >= ?",
                     (node, target))
    conn.commit()
    conn.close()
    return int(target)


async def _verify(engine: AsyncEngine, signer: Signer, **kw: Any) -> VerifyReport:
    report = await verify_log(engine, trusted_keys=[signer.public_raw], **kw)
    for p in report.problems:
        print(p.kind, p.node_id, p.seq, p.message)
    return report


async def test_the_untouched_log_verifies(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, signer: Signer,
) -> None:
    await _fill(writer_factory, settings)
    report = await _verify(engine, signer)
    assert report.ok
    assert [(n.records, n.checkpoints, n.unsigned) for n in report.nodes] == [(35, 5, 0)]


@pytest.mark.parametrize("drop", ["all", "from"])
async def test_forged_deny_with_checkpoints_deleted(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, signer: Signer,
    db_path: Path, drop: str,
) -> None:
    await _fill(writer_factory, settings)
    target = forge(db_path, drop=drop)
    report = await _verify(engine, signer)
    assert not report.ok
    assert [(p.kind, p.seq) for p in report.problems] == [
        ("unsigned", 1 if drop == "all" else 11)]
    message = report.problems[0].message
    if drop == "all":
        assert "35 records from seq 1 on and no signed checkpoint" in message
    else:
        assert "25 records after the last signed checkpoint (seq 10" in message
        assert "checkpoints after it were deleted" in message
    assert target == 13


async def test_checkpoints_deleted_without_touching_a_record(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, signer: Signer,
    db_path: Path,
) -> None:
    await _fill(writer_factory, settings)
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM audit_checkpoints")
    report = await _verify(engine, signer)
    assert [p.kind for p in report.problems] == ["unsigned"]


async def test_one_checkpoint_deleted_in_the_middle(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, signer: Signer,
    db_path: Path,
) -> None:
    await _fill(writer_factory, settings)
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM audit_checkpoints WHERE seq = 20")
    report = await _verify(engine, signer)
    assert [(p.kind, p.seq) for p in report.problems] == [("checkpoint_chain", 30)]
    assert "following a checkpoint at seq 20, which is missing" in report.problems[0].message


async def test_the_writer_goes_on_after_its_newest_checkpoints_were_deleted(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, signer: Signer,
    db_path: Path,
) -> None:
    """The forger deletes the newest signatures of a live chain and rewrites the tail;
    the writer's next checkpoint still names the deleted one."""
    writer = await _fill(writer_factory, settings, stop=False)
    forge(db_path, drop="from")
    for i in range(10):  # a checkpoint is due at seq 40
        await writer.record(make_record(i))
    report = await _verify(engine, signer)
    kinds = {p.kind for p in report.problems}
    assert "checkpoint_chain" in kinds and not report.ok


async def test_a_young_unsigned_tail_passes_an_old_one_fails_until_sealed(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, signer: Signer,
) -> None:
    """A writer killed before its final checkpoint: records 31..35 are unsigned. Fine
    while young; a failure once older than the cadence; ``seal`` signs them."""
    from gateway.audit.seal import seal_chain

    writer = await _fill(writer_factory, settings, stop=False)
    writer._task.cancel()  # type: ignore[union-attr]  # "killed": no final checkpoint
    writer._task = None
    young = await _verify(engine, signer, at=datetime.now(UTC) - timedelta(hours=2))
    assert young.ok and young.nodes[0].unsigned == 5
    old = await _verify(engine, signer)
    assert [(p.kind, p.seq) for p in old.problems] == [("unsigned", 31)]
    assert f"gateway audit seal --node {NODE}" in old.problems[0].message
    await writer._chain.release()  # the dead process's lease, as a restart would find it
    await writer._chain.drop_connection()
    sealed = await seal_chain(engine, settings, signer, NODE)
    assert (sealed.seq, sealed.signed) == (35, True)
    assert (await _verify(engine, signer)).ok


async def test_a_deleted_replica_is_named_by_the_other_chains(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, signer: Signer,
    db_path: Path,
) -> None:
    """Two writers (``test-node``, ``test-node-2``); the second's records, checkpoints and
    head row are deleted: the first's signed checkpoints still name its head."""
    clock = _past()
    first: AuditWriter = await writer_factory(settings, clock=clock)
    second: AuditWriter = await writer_factory(settings, clock=clock)
    assert (first.node_id, second.node_id) == (NODE, f"{NODE}-2")
    for i in range(30):
        await second.record(make_record(i, ts=clock()))
        await first.record(make_record(i, ts=clock()))
    await second.stop()
    await first.stop()
    assert (await _verify(engine, signer)).ok
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM audit_decision_rules WHERE decision_id IN (SELECT id FROM "
                     "audit_records WHERE node_id = ?)", (f"{NODE}-2",))
        for table in ("audit_records", "audit_checkpoints", "audit_nodes"):
            conn.execute(f"DELETE FROM {table} WHERE node_id = ?", (f"{NODE}-2",))
    report = await _verify(engine, signer)
    assert [(p.kind, p.node_id) for p in report.problems] == [("chain_missing", f"{NODE}-2")]
    assert f"chain {NODE}-2 reached seq 30" in report.problems[0].message
    assert f"chain {NODE}'s signed checkpoint" in report.problems[0].message


async def test_a_log_signed_before_links_existed_still_verifies(
    writer_factory: Callable[..., Any], db_path: Path, engine: AsyncEngine, signer: Signer,
) -> None:
    """Checkpoints in the old format (no link, no cadence) are accepted; the current
    writer continues the chain and its first checkpoint names the last old one."""
    from tests.audit.generate import generate_log

    generate_log(db_path, 2000, signer, node_id="bulk")
    writer: AuditWriter = await writer_factory(make_settings(db_path, node_id="bulk"))
    for i in range(12):
        await writer.record(make_record(i))
    await writer.stop()
    report = await _verify(engine, signer)
    assert report.ok
    assert [n.records for n in report.nodes] == [2012]
    with sqlite3.connect(db_path) as conn:
        first_linked = conn.execute("SELECT min(seq) FROM audit_checkpoints WHERE seq > 2000"
                                    ).fetchone()[0]
        conn.execute("DELETE FROM audit_checkpoints WHERE seq = 2000")
    report = await _verify(engine, signer)
    assert [(p.kind, p.seq) for p in report.problems] == [("checkpoint_chain", first_linked)]


def _gateway(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, as an auditor runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{db}", COLUMNS="300")
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", "audit", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


async def test_cli_and_http_verify_name_the_forgery(
    writer_factory: Callable[..., Any], settings: Settings, engine: AsyncEngine, signer: Signer,
    sessions: async_sessionmaker[AsyncSession], db_path: Path, tmp_path: Path,
) -> None:
    """/tmp/p1/repro_forge_checkpoints.sh: the key pinned with --public-key, the key
    beside the database, and the HTTP route all refuse the forged log."""
    await _fill(writer_factory, settings)
    pem = tmp_path / "gateway.pub"
    pem.write_text(public_pem(signer.public_raw))
    assert _gateway(db_path, "verify", "--public-key", str(pem)).returncode == 0
    forge(db_path, drop="all")
    for args in (["verify", "--public-key", str(pem)], ["verify"]):
        result = _gateway(db_path, *args)
        assert result.returncode == 1, result.stdout + result.stderr
        out = " ".join((result.stdout + result.stderr).split())
        assert "unsigned at test-node seq 1: 35 records from seq 1 on and no signed checkpoint" \
            in out and "FAILED" in out
    clear = await admin_tokens(sessions, ("auditor",), "t")
    services = _Services(settings, engine, sessions, AuditWriter(engine, settings, signer))
    app = make_app(services, audit_routes.router)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as http:
        doc = (await http.get("/admin/v1/audit/verify",
                              headers={"authorization": f"Bearer {clear['auditor']}"})).json()
    assert doc["ok"] is False
    assert (doc["first_problem"]["kind"], doc["first_problem"]["seq"]) == ("unsigned", 1)


async def _export_jsonl(sessions: async_sessionmaker[AsyncSession], path: Path,
                        filters: DecisionFilters | None = None) -> None:
    exporter = Exporter(sessions, filters or DecisionFilters(), "jsonl")
    with path.open("wb") as fh:
        async for line in exporter.lines():
            fh.write(line)


@pytest.mark.parametrize("keep", [0, 2])
async def test_an_export_stripped_of_its_checkpoints_fails(
    writer_factory: Callable[..., Any], settings: Settings, signer: Signer,
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, keep: int,
) -> None:
    """The same forgery on an export: seq 13 flipped to an allow, the rest re-hashed, and
    the manifest's checkpoints (all, or all but the first ``keep``) and figures fixed up."""
    await _fill(writer_factory, settings)
    path = tmp_path / "all.jsonl"
    await _export_jsonl(sessions, path)
    assert verify_export(path, trusted_keys=[signer.public_raw]).ok
    *lines, last = path.read_bytes().splitlines()
    manifest = orjson.loads(last)
    records = [orjson.loads(line) for line in lines]
    prev = ""
    for item in records:
        if item["seq"] == 13:
            item.update(decision="allow", status=200, rule_ids=["tier-entitlement"])
        if item["seq"] >= 13:
            item["prev_hash"] = prev
            item["hash"] = chain_hash(prev, body_of_export(item))
        prev = item["hash"]
    node = manifest["nodes"][NODE]
    signed = [*filter(None, [node.get("anchor")]), *node["checkpoints"]][:keep]
    node.update(anchor=signed[0] if signed else None, checkpoints=signed[1:], last_hash=prev)
    data = b"".join(orjson.dumps(item, option=orjson.OPT_SORT_KEYS) + b"\n" for item in records)
    manifest["data_sha256"] = hashlib.sha256(data).hexdigest()
    path.write_bytes(data + orjson.dumps(manifest) + b"\n")
    report = verify_export(path, trusted_keys=[signer.public_raw])
    for p in report.problems:
        print(p.kind, p.seq, p.message)
    assert not report.ok
    assert [(p.kind, p.seq) for p in report.problems] == [("unsigned", 1 if keep == 0 else 11)]


async def test_a_time_range_export_runs_on_to_the_signing_checkpoint(
    writer_factory: Callable[..., Any], settings: Settings, signer: Signer,
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    """A range ending at seq 15 is exported through seq 20, the checkpoint that signs it:
    every record of a full export is proven, none is left for a forger to rewrite."""
    base = datetime.now(UTC) - timedelta(hours=1)
    writer: AuditWriter = await writer_factory(settings)
    for i in range(25):
        await writer.record(make_record(i, ts=base + timedelta(seconds=i)))
    await writer.stop()
    path = tmp_path / "range.jsonl"
    until = base + timedelta(seconds=14.5)
    await _export_jsonl(sessions, path, DecisionFilters(from_ts=base, to_ts=until))
    report = verify_export(path, trusted_keys=[signer.public_raw])
    assert report.ok, report.problems
    assert (report.records, report.proven, report.unsigned) == (20, 20, 0)
