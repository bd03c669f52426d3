"""The audit log on a real PostgreSQL server (Core path, asyncpg)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

import gateway.db.models  # noqa: F401
from gateway.audit.chain import canonical, chain_hash, parse_body
from gateway.audit.export import Exporter
from gateway.audit.farms import FarmOptions, farm_report
from gateway.audit.offline import verify_export
from gateway.audit.query import DecisionFilters, list_decisions
from gateway.audit.signing import load_signer
from gateway.audit.tables import (
    audit_checkpoints,
    audit_decision_rules,
    audit_nodes,
    audit_records,
)
from gateway.audit.verify import verify_log
from gateway.audit.writer import AuditWriter
from gateway.db.base import Base
from gateway.db.session import create_engine, session_factory
from gateway.settings import Settings
from gateway.stages import AuditUnavailable
from tests.audit import farm_scenario as farms
from tests.audit.conftest import make_record
from tests.audit.test_export_query import check_citizenship_filter
from tests.support import postgres_server

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not postgres_server.available(), reason="PostgreSQL not installed"),
]


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres_server.PostgresServer]:
    server = postgres_server.PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
async def pg_engine(
    pg: postgres_server.PostgresServer,
) -> AsyncIterator[tuple[AsyncEngine, Settings]]:
    url = pg.create_database()
    key = base64.b64encode(bytes(range(32))).decode()
    settings = Settings(database_url=url, upstream_url="http://127.0.0.1:9", node_id="pg",
                        audit_signing_key=key, audit_checkpoint_every=50)
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine, settings
    await engine.dispose()


async def test_create_all_keeps_the_audit_indexes_partial(
    pg_engine: tuple[AsyncEngine, Settings],
) -> None:
    # The PostgreSQL predicates are attached at create time (see audit/tables.py),
    # so this is what proves the shared metadata still builds partial indexes.
    engine, _ = pg_engine
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_records'"
        ))
        defs = {name: ddl for name, ddl in rows.all()}
    for name in ("customer_id_id", "verdict_id", "model_id", "origin_country_id"):
        assert "WHERE ((kind)::text = 'decision'::text)" in defs[f"ix_audit_records_{name}"]
    assert "WHERE (decision_id IS NOT NULL)" in defs["ix_audit_records_outcome_of"]
    assert "WHERE" not in defs["ix_audit_records_ts_node_seq"]


async def test_writer_verify_query_export_on_postgres(
    pg_engine: tuple[AsyncEngine, Settings], tmp_path: Path
) -> None:
    engine, settings = pg_engine
    signer = load_signer(settings)
    first = AuditWriter(engine, settings, signer)
    second = AuditWriter(engine, settings, signer)
    await first.start()
    await second.start()
    assert {first.node_id, second.node_id} == {"pg", "pg-2"}
    await asyncio.gather(*(w.record(make_record(i)) for i in range(150)
                           for w in (first, second)))
    await first.stop()
    await second.stop()
    report = await verify_log(engine, trusted_keys=[signer.public_raw])
    assert report.ok, report.problems
    assert sorted(n.records for n in report.nodes) == [150, 150]
    sessions = session_factory(engine)
    items, cursor = await list_decisions(sessions, DecisionFilters(customer_id="cust-1"), None, 10)
    assert len(items) == 10 and cursor is not None
    out = tmp_path / "pg.jsonl"
    exporter = Exporter(sessions, DecisionFilters(), "jsonl")
    with out.open("wb") as fh:
        async for line in exporter.lines():
            fh.write(line)
    offline = verify_export(out, trusted_keys=[signer.public_raw])
    assert offline.ok and offline.records == 300 and offline.proven == 300
    async with engine.begin() as conn:
        await conn.execute(update(audit_records).where(audit_records.c.node_id == "pg",
                                                       audit_records.c.seq == 77)
                           .values(status=999))
    broken = await verify_log(engine, trusted_keys=[signer.public_raw])
    assert broken.first is not None and (broken.first.node_id, broken.first.seq) == ("pg", 77)


async def test_report_rule_ids_on_postgres(pg_engine: tuple[AsyncEngine, Settings]) -> None:
    """The Core path writes the report side-index rows; the joined filters run there."""
    engine, settings = pg_engine
    signer = load_signer(settings)
    writer = AuditWriter(engine, settings, signer)
    await writer.start()
    records = [make_record(i, report_rule_ids=["draft"] if i % 2 else []) for i in range(12)]
    for rec in records:
        await writer.record(rec)
    await writer.stop()
    assert (await verify_log(engine, trusted_keys=[signer.public_raw])).ok
    sessions = session_factory(engine)
    both = DecisionFilters(report_rule_id="draft", rule_id="tier-entitlement")
    items, _ = await list_decisions(sessions, both, None, 100)
    assert [i["id"] for i in items] == [
        r.id for r in records if r.report_rule_ids and "tier-entitlement" in r.rule_ids]
    items, _ = await list_decisions(sessions, DecisionFilters(report_rule_id="draft"), None, 100)
    assert [i["id"] for i in items] == [r.id for r in records if r.report_rule_ids]


async def test_citizenship_filter_on_postgres(pg_engine: tuple[AsyncEngine, Settings]) -> None:
    """The filter reads the record body's JSON in PostgreSQL's own way (jsonb)."""
    engine, settings = pg_engine
    writer = AuditWriter(engine, settings, load_signer(settings))
    await writer.start()
    await check_citizenship_filter(writer, session_factory(engine))
    await writer.stop()


async def test_farm_report_on_postgres(pg_engine: tuple[AsyncEngine, Settings]) -> None:
    """The JSON-field SQL (``->>`` on PostgreSQL, ``json_extract`` on SQLite) and the
    window-function pass give PostgreSQL the same report, figure for figure."""
    engine, settings = pg_engine
    writer = AuditWriter(engine, settings, load_signer(settings))
    await writer.start()
    await farms.write_scenario(writer)
    await writer.stop()
    doc = await farm_report(engine, FarmOptions(farms.FROM, farms.TO, include_weak=True))
    assert doc["clusters"] == [farms.FARM_B_EXPECTED, farms.FARM_A_EXPECTED, farms.NAT_EXPECTED]
    assert doc["scanned"] == {"customers": 14, "requests": 85, "links": 6}
    assert doc["ignored"]["common_prompts"] == 1


async def test_deleting_a_replica_or_its_checkpoints_fails_verify_on_postgres(
    pg_engine: tuple[AsyncEngine, Settings],
) -> None:
    """Two chains on one server; the second is deleted wholesale (records, rule index,
    checkpoints, head row): the first chain's signed checkpoints still name its head.
    Then every checkpoint of the first goes too, after a deny was turned into an allow
    and the chain re-hashed: an old chain with no signature left fails."""
    engine, settings = pg_engine
    signer = load_signer(settings)
    then = datetime.now(UTC) - timedelta(hours=2)
    first = AuditWriter(engine, settings, signer, clock=lambda: then)
    second = AuditWriter(engine, settings, signer, clock=lambda: then)
    await first.start()
    await second.start()
    for i in range(120):
        await second.record(make_record(i, ts=then))
        await first.record(make_record(i, ts=then))
    await second.stop()
    await first.stop()
    assert (await verify_log(engine, trusted_keys=[signer.public_raw])).ok
    t, dr = audit_records, audit_decision_rules
    async with engine.begin() as conn:
        await conn.execute(delete(dr).where(dr.c.decision_id.in_(
            select(t.c.id).where(t.c.node_id == "pg-2"))))
        for table in (t, audit_checkpoints, audit_nodes):
            await conn.execute(delete(table).where(table.c.node_id == "pg-2"))
    report = await verify_log(engine, trusted_keys=[signer.public_raw])
    assert [(p.kind, p.node_id, p.seq) for p in report.problems] == [
        ("chain_missing", "pg-2", 120)]
    async with engine.begin() as conn:
        rows = (await conn.execute(select(t).where(t.c.node_id == "pg").order_by(t.c.seq))).all()
        prev = ""
        for row in rows:
            body = row.body
            if row.seq == 4:  # make_record(3): a 403 deny
                doc = parse_body(body)
                doc.update(decision="allow", status=200)
                body = canonical(doc).decode()
            if row.seq >= 4:
                new = chain_hash(prev, body.encode())
                await conn.execute(update(t).where(t.c.id == row.id).values(
                    body=body, prev_hash=prev, hash=new, decision=parse_body(body)["decision"],
                    status=parse_body(body)["status"]))
                prev = new
            else:
                prev = row.hash
        await conn.execute(update(audit_nodes).values(last_hash=prev))
        await conn.execute(delete(audit_checkpoints))
    report = await verify_log(engine, trusted_keys=[signer.public_raw])
    assert [(p.kind, p.node_id, p.seq) for p in report.problems] == [("unsigned", "pg", 1)]


async def test_one_bad_record_does_not_fail_its_batch_on_postgres(
    pg_engine: tuple[AsyncEngine, Settings],
) -> None:
    """/tmp/p1/t_poison.py, t_long.py, t_nul.py: a model with NUL or 200 characters, and
    a 100-character customer id (the admin API takes 128), ride in one group commit with
    twelve good records. All commit; the bodies keep the values exactly, the bounded
    query columns hold them as U+FFFD and cut at 128; verify agrees. A value the
    store still refuses (here an ``origin_region`` a geo bug made too long) fails only
    its own request."""
    engine, settings = pg_engine
    signer = load_signer(settings)
    writer = AuditWriter(engine, settings, signer)
    await writer.start()
    odd = [make_record(1, model="x\u0000"), make_record(2, model="m" * 200),
           make_record(3, customer_id="L" * 100)]
    good = [make_record(i) for i in range(12)]
    poison = make_record(5, origin_region="XX-" + "9" * 20)
    results = await asyncio.gather(*(writer.record(r) for r in [*good[:6], *odd, poison,
                                                                 *good[6:]]),
                                   return_exceptions=True)
    await writer.stop()
    assert [type(r).__name__ for r in results] == ["NoneType"] * 9 + ["AuditUnavailable"] + [
        "NoneType"] * 6
    assert "value too long for type character varying(8)" in str(results[9])
    async with engine.connect() as conn:
        rows = {r.id: r for r in (await conn.execute(select(audit_records))).all()}
    assert poison.id not in rows and all(r.id in rows for r in [*good, *odd])
    assert rows[odd[0].id].model == "x\ufffd"
    assert parse_body(rows[odd[0].id].body)["model"] == "x\u0000"
    assert rows[odd[1].id].model == "m" * 128
    assert parse_body(rows[odd[1].id].body)["model"] == "m" * 200
    assert rows[odd[2].id].customer_id == "L" * 100
    report = await verify_log(engine, trusted_keys=[signer.public_raw])
    assert report.ok, report.problems
    sessions = session_factory(engine)
    items, _ = await list_decisions(sessions, DecisionFilters(customer_id="L" * 100), None, 10)
    assert [i["id"] for i in items] == [odd[2].id]


async def test_a_revoked_grant_keeps_the_records_out_of_the_log_lines(
    pg: postgres_server.PostgresServer, pg_engine: tuple[AsyncEngine, Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seen in the chaos drill's logs: a batch that failed as an outage (here
    the writer's INSERT grant revoked, SQLSTATE 42501) was logged with
    SQLAlchemy's whole message, which carries the statement and its
    parameters: every record of the batch (customer ids, citizenships, client
    IPs) went to the application log, and again in the 503 log line of each of
    the batch's requests, so a batch of 256 wrote 256 x 256 records. The
    audit log is the place for records, behind the auditor role; application
    logs are shipped wider. The log lines and the error now carry the
    driver's own message only (as the refused-value path already did)."""
    import logging

    _, settings = pg_engine
    name = settings.database_url.rsplit("/", 1)[1]
    pg.psql("CREATE ROLE audit_w LOGIN PASSWORD 'pw-audit-w'", database=name)
    pg.psql("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO audit_w; "
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO audit_w", database=name)
    url = settings.database_url.replace("gateway:gateway-test-password@", "audit_w:pw-audit-w@")
    limited = settings.model_copy(update={"database_url": url})
    engine = create_engine(limited)
    writer = AuditWriter(engine, limited, load_signer(limited))
    await writer.start()
    try:
        await writer.record(make_record(1))
        pg.psql("REVOKE INSERT ON audit_records FROM audit_w", database=name)
        secret = make_record(2, customer_id="cus_private_customer", client_ip="198.51.100.23")
        with (caplog.at_level(logging.INFO, logger="gateway.audit.writer"),
              pytest.raises(AuditUnavailable) as refused):
            await writer.record(secret)
        said = "\n".join([str(refused.value), *(r.getMessage() for r in caplog.records)])
        assert "permission denied" in said
        for private in ("cus_private_customer", "198.51.100.23", secret.id, "parameters"):
            assert private not in said, said
        pg.psql("GRANT INSERT ON audit_records TO audit_w", database=name)
        await writer.record(make_record(3))
    finally:
        await writer.stop()
        await engine.dispose()


async def test_a_message_batchs_records_commit_all_or_nothing_on_postgres(
    pg_engine: tuple[AsyncEngine, Settings],
) -> None:
    """The Core path too: a batch's records past ``audit_batch_max`` are one
    transaction, and a UNIQUE violation in its last part leaves none of them."""
    engine, settings = pg_engine
    writer = AuditWriter(engine, settings.model_copy(update={"audit_batch_max": 8}),
                         load_signer(settings))  # fmt: skip
    await writer.start()
    try:
        first = make_record(0)
        await writer.record(first)
        batch = [make_record(i) for i in range(1, 21)]
        batch[18] = make_record(18, id=first.id)
        with pytest.raises(AuditUnavailable):
            await writer.record_many(batch)
        batch[18] = make_record(18)
        await writer.record_many(batch)
    finally:
        await writer.stop()
    async with engine.connect() as conn:
        ids = list((await conn.execute(select(audit_records.c.id))).scalars())
    assert sorted(ids) == sorted([first.id, *(r.id for r in batch)])
    assert (await verify_log(engine)).ok
