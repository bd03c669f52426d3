"""Ownership snapshots in the audit log, on SQLite and PostgreSQL: stored once,
with the records that name them, checked by verify, put back for replays."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

import gateway.db.models  # noqa: F401
from gateway.audit.export import Exporter
from gateway.audit.offline import verify_export
from gateway.audit.query import DecisionFilters, iter_replay_facts
from gateway.audit.signing import load_signer
from gateway.audit.tables import audit_ownership_snapshots
from gateway.audit.verify import verify_log
from gateway.audit.writer import AuditWriter
from gateway.cli.audit import app as audit_app
from gateway.db.base import Base
from gateway.db.session import create_engine, session_factory
from gateway.geo.origin import Origin
from gateway.identity.ownership import Ownership
from gateway.identity.ownership_snapshot import recorded_ownership
from gateway.identity.principal import Principal
from gateway.policy.facts import BodyFacts, RequestFacts
from gateway.policy.replay import from_replay, replay_facts
from gateway.settings import Settings
from gateway.stages import AuditUnavailable
from tests.audit.conftest import make_record, make_settings
from tests.policy.conftest import POLICIES
from tests.policy.test_cli import run as run_policy
from tests.support import postgres_server

OWNERS = tuple(
    Ownership("SG", 25.0, f"Holding {i} " + "x" * 200,
              tuple(Ownership("US", 1.5, f"Owner {i}.{j}") for j in range(20)))
    for i in range(4)
)
REQUEST = RequestFacts("/v1/chat/completions", "openai", BodyFacts(model="haiku-lite"),
                       Origin("8.8.8.8", "US", None))


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres_server.PostgresServer | None]:
    if not postgres_server.available():
        yield None
        return
    server = postgres_server.PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path,
                pg: postgres_server.PostgresServer | None,
                ) -> AsyncIterator[tuple[AsyncEngine, Settings]]:
    if request.param == "sqlite":
        settings = make_settings(tmp_path / "gateway.db")
    else:
        if pg is None:
            pytest.skip("PostgreSQL not installed")
        key = base64.b64encode(bytes(range(32))).decode()
        settings = Settings(database_url=pg.create_database(), upstream_url="http://127.0.0.1:9",
                            node_id="pg", audit_signing_key=key, audit_checkpoint_every=10)
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine, settings
    await engine.dispose()


def _principal(customer_id: str = "big-tree") -> Principal:
    return Principal(customer_id, name="Big Tree Pte", kind="organization", ownership=OWNERS,
                     recorded=recorded_ownership(OWNERS))


def _record(i: int, principal: Principal) -> object:
    owned = principal.ownership_record()
    return make_record(i, customer_id=principal.customer_id,
                       facts=replay_facts(principal, REQUEST, owned),
                       ownership_snapshot=owned.snapshot)


async def _write(engine: AsyncEngine, settings: Settings, n: int) -> str:
    """``n`` records naming the tree from each of two writers (two chains), at once."""
    signer = load_signer(settings)
    writers = [AuditWriter(engine, settings, signer) for _ in range(2)]
    for w in writers:
        await w.start()
    principal = _principal()
    await asyncio.gather(*(w.record(_record(i, principal)) for i in range(n)  # type: ignore[arg-type]
                           for w in writers))
    await writers[0].record(make_record(99))  # no ownership: nothing named
    for w in writers:
        await w.stop()
    snapshot = principal.ownership_record().snapshot
    assert snapshot is not None
    return snapshot.sha256


async def test_verify_fails_when_a_named_snapshot_is_altered_or_deleted(
    store: tuple[AsyncEngine, Settings],
) -> None:
    engine, settings = store
    digest = await _write(engine, settings, 12)
    trusted = [load_signer(settings).public_raw]
    report = await verify_log(engine, trusted_keys=trusted)
    assert report.ok, report.problems
    t = audit_ownership_snapshots
    async with engine.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(t))).scalar() == 1
        await conn.execute(update(t).values(body=t.c.body + " "))
    report = await verify_log(engine, trusted_keys=trusted)
    assert [p.kind for p in report.problems] == ["ownership_snapshot_mismatch"], report.problems
    assert digest in report.problems[0].message
    async with engine.begin() as conn:
        await conn.execute(delete(t))
    report = await verify_log(engine, trusted_keys=trusted)
    assert [p.kind for p in report.problems] == ["ownership_snapshot_missing"], report.problems


async def test_the_replay_stream_puts_the_named_tree_back(
    store: tuple[AsyncEngine, Settings],
) -> None:
    engine, settings = store
    await _write(engine, settings, 3)
    sessions = session_factory(engine)
    since = datetime.now(UTC) - timedelta(hours=1)
    items = [i async for i in iter_replay_facts(sessions, since)
             if i["facts"].get("principal", {}).get("ownership_sha256")]
    assert len(items) == 6
    principal, _ = from_replay(items[0]["facts"])
    assert principal.ownership == OWNERS
    # Without its tree, a record is refused by the replay, never decided as owner-less.
    del items[1]["facts"]["principal"]["ownership"]
    with pytest.raises(ValueError, match="ownership snapshot"):
        from_replay(items[1]["facts"])


async def _export(engine: AsyncEngine, path: Path) -> dict[str, Any]:
    exporter = Exporter(session_factory(engine), DecisionFilters(), "jsonl")
    with path.open("wb") as fh:
        async for line in exporter.lines():
            fh.write(line)
    return exporter.manifest


def _rewrite_manifest(path: Path, manifest: dict[str, Any]) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + orjson.dumps({"kind": "manifest", **manifest}) + b"\n")


async def test_an_export_carries_the_trees_its_records_name_and_offline_verify_checks_them(
    store: tuple[AsyncEngine, Settings], tmp_path: Path
) -> None:
    engine, settings = store
    digest = await _write(engine, settings, 3)
    trusted = [load_signer(settings).public_raw]
    path = tmp_path / "export.jsonl"
    manifest = await _export(engine, path)
    text = manifest["ownership_snapshots"][digest]
    assert list(manifest["ownership_snapshots"]) == [digest]
    report = verify_export(path, trusted_keys=trusted)
    assert report.ok, report.problems
    assert report.ownership_snapshots == [digest]
    # ``policy impact --from-jsonl`` replays from the tree in the manifest.
    code, out = run_policy("impact", str(POLICIES), "--since", "52w", "--from-jsonl", str(path))
    assert code == 0, out
    assert "7 recorded decisions, 1 skipped" in out, out  # make_record(99): no replay facts
    # The manifest is not hashed with the records: a tree altered or left out is found.
    _rewrite_manifest(path, {**manifest, "ownership_snapshots": {digest: text + " "}})
    kinds = [p.kind for p in verify_export(path, trusted_keys=trusted).problems]
    assert kinds == ["ownership_snapshot_mismatch"], kinds
    _rewrite_manifest(path, {**manifest, "ownership_snapshots": {}})
    kinds = [p.kind for p in verify_export(path, trusted_keys=trusted).problems]
    assert kinds == ["ownership_snapshot_missing"], kinds


async def test_gateway_audit_ownership_prints_the_proven_tree(
    store: tuple[AsyncEngine, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, settings = store
    digest = await _write(engine, settings, 1)
    path = tmp_path / "export.jsonl"
    manifest = await _export(engine, path)
    text = manifest["ownership_snapshots"][digest]
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    for source in ([], ["--export", str(path)]):
        shown = await asyncio.to_thread(runner.invoke, audit_app, ["ownership", digest, *source])
        assert shown.exit_code == 0, shown.output
        assert shown.stdout.strip() == text
    missing = await asyncio.to_thread(runner.invoke, audit_app, ["ownership", "0" * 64])
    assert missing.exit_code == 1, missing.output
    assert (await asyncio.to_thread(runner.invoke, audit_app, ["ownership", "xyz"])).exit_code == 2


async def test_a_record_never_commits_without_the_tree_it_names(
    store: tuple[AsyncEngine, Settings],
) -> None:
    """The tree goes in the record's own transaction: when it cannot be stored
    (here its table is gone), the record is refused (its request gets 503) and
    the writer does not take the tree for stored; once the table is back, the
    next record naming it stores it."""
    engine, settings = store
    signer = load_signer(settings)
    writer = AuditWriter(engine, settings, signer)
    await writer.start()
    principal = _principal()
    async with engine.begin() as conn:
        await conn.run_sync(audit_ownership_snapshots.drop)
    try:
        with pytest.raises(AuditUnavailable):
            await writer.record(_record(1, principal))  # type: ignore[arg-type]
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(audit_ownership_snapshots.create)
    await writer.record(make_record(2))  # the writer is well again
    await writer.record(_record(3, principal))  # type: ignore[arg-type]
    await writer.stop()
    report = await verify_log(engine, trusted_keys=[signer.public_raw])
    assert report.ok, report.problems
    assert sum(n.records for n in report.nodes) == 2
    async with engine.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(
            audit_ownership_snapshots))).scalar() == 1
