"""Tamper tests: every kind of edit to the log is found, at the right place."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.chain import canonical, chain_hash, parse_body
from gateway.audit.ids import new_id
from gateway.audit.record import OutcomeRecord
from gateway.audit.signing import public_raw
from gateway.audit.tables import (
    audit_checkpoints,
    audit_decision_rules,
    audit_nodes,
    audit_records,
)
from gateway.audit.verify import VerifyReport, verify_log
from gateway.audit.writer import AuditWriter
from tests.audit.conftest import make_record

NODE = "test-node"


@pytest.fixture
async def populated(writer: AuditWriter) -> AuditWriter:
    """26 records, checkpoints at seq 0 (genesis), 10 and 20, six records after the last."""
    for i in range(12):
        await writer.record(make_record(i))
    first = writer.head
    assert first is not None
    await writer.record_outcome(OutcomeRecord(new_id(), datetime.now(UTC), "X" * 26, 200, 10, 20))
    for i in range(12, 25):
        await writer.record(make_record(i))
    assert writer.head is not None and writer.head.seq == 26
    return writer


async def _verify(engine: AsyncEngine, **kw: object) -> VerifyReport:
    report = await verify_log(engine, chunk_size=7, **kw)  # small chunks cross boundaries
    for p in report.problems:
        print(p.kind, p.seq, p.message)
    return report


async def _row(engine: AsyncEngine, seq: int):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(select(audit_records).where(
            audit_records.c.node_id == NODE, audit_records.c.seq == seq))).one()


async def _exec(engine: AsyncEngine, *stmts: object) -> None:
    async with engine.begin() as conn:
        for stmt in stmts:
            await conn.execute(stmt)  # type: ignore[call-overload]


def _at(seq: int):  # type: ignore[no-untyped-def]
    return (audit_records.c.node_id == NODE) & (audit_records.c.seq == seq)


async def test_untouched_log_verifies(populated: AuditWriter, engine: AsyncEngine) -> None:
    report = await _verify(engine)
    assert report.ok
    # The genesis checkpoint (seq 0, written when the chain was claimed), 10 and 20.
    assert [(n.node_id, n.records, n.checkpoints, n.unsigned)
            for n in report.nodes] == [(NODE, 26, 3, 6)]


async def test_edited_body_field(populated: AuditWriter, engine: AsyncEngine) -> None:
    row = await _row(engine, 5)
    body = parse_body(row.body)
    body["decision"] = "allow" if body["decision"] == "deny" else "deny"
    await _exec(engine, update(audit_records).where(_at(5)).values(body=canonical(body).decode()))
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("edited", 5)
    assert report.problem_count == 1


async def test_edited_index_column(populated: AuditWriter, engine: AsyncEngine) -> None:
    await _exec(engine, update(audit_records).where(_at(8)).values(customer_id="someone-else"))
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("column_mismatch", 8)


async def test_deleted_record(populated: AuditWriter, engine: AsyncEngine) -> None:
    await _exec(engine, delete(audit_records).where(_at(7)))
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("gap", 8)
    assert "seq 7 missing" in report.first.message


async def test_swapped_records(populated: AuditWriter, engine: AsyncEngine) -> None:
    await _exec(
        engine,
        update(audit_records).where(_at(3)).values(seq=-3),
        update(audit_records).where(_at(4)).values(seq=3),
        update(audit_records).where(_at(-3)).values(seq=4),
    )
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("reordered", 3)


async def test_inserted_forged_record(populated: AuditWriter, engine: AsyncEngine) -> None:
    """A careful forger renumbers the rest and hashes the forged record correctly."""
    prev = await _row(engine, 12)
    forged = parse_body(prev.body)
    forged.update(id=new_id(), seq=13, customer_id="forged", decision="allow")
    body = canonical(forged)
    await _exec(
        engine,
        update(audit_records).where(audit_records.c.seq > 12)
        .values(seq=audit_records.c.seq + 1000),
        update(audit_records).where(audit_records.c.seq > 1000)
        .values(seq=audit_records.c.seq - 999),
    )
    row = {c.name: getattr(prev, c.name) for c in audit_records.c}
    row.update(id=forged["id"], seq=13, customer_id="forged", decision="allow",
               body=body.decode(), prev_hash=prev.hash, hash=chain_hash(prev.hash, body))
    await _exec(engine, audit_records.insert().values(**row))
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("inserted", 13)
    assert any(p.kind == "checkpoint_mismatch" and p.seq == 20 for p in report.problems)


async def test_consistent_rewrite_caught_by_checkpoint(
    populated: AuditWriter, engine: AsyncEngine
) -> None:
    """Edit seq 5 and re-hash everything after it: only the signature can tell."""
    async with engine.begin() as conn:
        rows = (await conn.execute(select(audit_records).where(audit_records.c.seq >= 4)
                                   .order_by(audit_records.c.seq))).all()
        prev = rows[0].hash
        for row in rows[1:]:
            body = parse_body(row.body)
            if row.seq == 5:
                assert body["decision"] == "allow"
                body["decision"] = "deny"
            raw = canonical(body)
            new_hash = chain_hash(prev, raw)
            await conn.execute(update(audit_records).where(_at(row.seq)).values(
                body=raw.decode(), prev_hash=prev, hash=new_hash, decision=body.get("decision")))
            prev = new_hash
        await conn.execute(update(audit_nodes).values(last_hash=prev))
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("checkpoint_mismatch", 10)


async def test_truncated_past_a_checkpoint(populated: AuditWriter, engine: AsyncEngine) -> None:
    await _exec(engine, delete(audit_records).where(audit_records.c.seq > 15))
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("truncated", 16)
    assert "checkpoint at seq 20" in report.first.message


async def test_truncated_after_last_checkpoint(populated: AuditWriter, engine: AsyncEngine) -> None:
    await _exec(engine, delete(audit_records).where(audit_records.c.seq > 23))
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("truncated", 24)
    assert "head row says seq 26" in report.first.message


async def test_replaced_checkpoint_signature(populated: AuditWriter, engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        other = (await conn.execute(select(audit_checkpoints.c.signature)
                                    .where(audit_checkpoints.c.seq == 20))).scalar_one()
    await _exec(engine, update(audit_checkpoints).where(audit_checkpoints.c.seq == 10)
                .values(signature=other))
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("bad_signature", 10)


async def test_checkpoint_resigned_with_an_untrusted_key(
    populated: AuditWriter, engine: AsyncEngine
) -> None:
    stranger = public_raw(Ed25519PrivateKey.generate().public_key())
    report = await _verify(engine, trusted_keys=[stranger])
    assert report.first is not None and report.first.kind == "unknown_key"
    trusted = await _verify(engine, trusted_keys=[populated.signer.public_raw])
    assert trusted.ok
    assert base64.b64decode(populated.signer.public_b64) == populated.signer.public_raw


async def test_forged_append_past_head(populated: AuditWriter, engine: AsyncEngine) -> None:
    last = await _row(engine, 26)
    body = parse_body(last.body)
    body.update(id=new_id(), seq=27)
    raw = canonical(body)
    row = {c.name: getattr(last, c.name) for c in audit_records.c}
    row.update(id=body["id"], seq=27, body=raw.decode(), prev_hash=last.hash,
               hash=chain_hash(last.hash, raw))
    await _exec(engine, audit_records.insert().values(**row))
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("beyond_head", 27)


async def test_tail_rewritten_after_last_checkpoint(
    populated: AuditWriter, engine: AsyncEngine
) -> None:
    """Edit seq 23 (after the last checkpoint, 20) and re-hash 23..26 consistently,
    leaving the head row alone: its ``last_hash`` no longer matches the chain."""
    async with engine.begin() as conn:
        rows = (await conn.execute(select(audit_records).where(
            audit_records.c.seq >= 22).order_by(audit_records.c.seq))).all()
        prev = rows[0].hash
        for row in rows[1:]:
            body = parse_body(row.body)
            if row.seq == 23:
                body["customer_id"] = "ghost"
            raw = canonical(body)
            new_hash = chain_hash(prev, raw)
            await conn.execute(update(audit_records).where(_at(row.seq)).values(
                body=raw.decode(), prev_hash=prev, hash=new_hash,
                customer_id=body.get("customer_id")))
            prev = new_hash
    report = await _verify(engine)
    assert report.first is not None
    assert (report.first.kind, report.first.seq) == ("head_mismatch", 26)
    assert "rewritten" in report.first.message
    assert report.problem_count == 1


async def test_rule_index_rows_deleted_and_invented(
    populated: AuditWriter, engine: AsyncEngine
) -> None:
    """The side index behind ``?rule_id=`` must hold exactly each decision's rule ids."""
    deleted, invented = await _row(engine, 4), await _row(engine, 9)
    assert parse_body(deleted.body)["rule_ids"] == ["directive-frontier-us-persons-only"]
    dr = audit_decision_rules
    await _exec(
        engine,
        delete(dr).where(dr.c.decision_id == deleted.id),
        dr.insert().values(rule_id="sanctioned-origin", decision_id=invented.id),
    )
    report = await _verify(engine)
    found = [(p.kind, p.seq, p.record_id) for p in report.problems]
    assert found == [("rule_index", 4, deleted.id), ("rule_index", 9, invented.id)]
    assert "lacks 'directive-frontier-us-persons-only'" in report.problems[0].message
    assert "lists 'sanctioned-origin'" in report.problems[1].message


async def test_rule_index_foreign_rows(populated: AuditWriter, engine: AsyncEngine) -> None:
    """Rows naming no record, or a record that is not a decision, are failures too."""
    outcome = await _row(engine, 13)
    assert outcome.kind == "outcome"
    ghost = new_id()
    dr = audit_decision_rules
    await _exec(
        engine,
        dr.insert().values(rule_id="tier-entitlement", decision_id=ghost),
        dr.insert().values(rule_id="tier-entitlement", decision_id=outcome.id),
    )
    report = await _verify(engine)
    found = {(p.kind, p.seq, p.record_id) for p in report.problems}
    assert found == {("rule_index", 13, outcome.id), ("rule_index", None, ghost)}
    assert report.problem_count == 2
    assert any(f"record {ghost}, which is no record" in p.message for p in report.problems)
