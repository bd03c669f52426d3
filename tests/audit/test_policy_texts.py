"""Policy texts in the log and in exports: retrievable by the version decisions
name, and only ever a text whose SHA-256 is that version."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.export import Exporter
from gateway.audit.offline import verify_export
from gateway.audit.policy_texts import policy_texts
from gateway.audit.query import DecisionFilters
from gateway.audit.writer import AuditWriter
from tests.audit.conftest import make_record

TEXT = '{"rules":[{"id":"emergency","reason":"Directive D."}]}'
VERSION = hashlib.sha256(TEXT.encode()).hexdigest()


async def test_exports_carry_the_policy_text_their_decisions_name(
    writer: AuditWriter, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    await writer.record_event("policy_reload", {"old_version": None, "new_version": VERSION,
                                                "bundle": TEXT})
    # A text that does not hash to the version it claims is never returned.
    await writer.record_event("policy_reload", {"old_version": VERSION, "new_version": "f" * 64,
                                                "bundle": TEXT})
    for i in range(12):
        await writer.record(make_record(i, policy_version=VERSION))
    await writer.record(make_record(99, policy_version="v" * 64))  # an old record: no text
    assert await policy_texts(sessions) == {VERSION: TEXT}

    # A selection without the reload record: the manifest still carries the text.
    path = tmp_path / "part.jsonl"
    exporter = Exporter(sessions, DecisionFilters(customer_id="cust-1"), "jsonl")
    with path.open("wb") as fh:
        async for line in exporter.lines():
            fh.write(line)
    assert exporter.manifest["policies"] == {VERSION: TEXT}
    report = verify_export(path, trusted_keys=[writer.signer.public_raw])
    assert report.problems == [] and report.policy_versions == [VERSION]

    # An edited text in the manifest is named, though the manifest is unsigned.
    lines = path.read_bytes().splitlines()
    manifest = orjson.loads(lines[-1])
    manifest["policies"][VERSION] = TEXT.replace("Directive D.", "Directive E.")
    path.write_bytes(b"\n".join([*lines[:-1], orjson.dumps(manifest)]) + b"\n")
    report = verify_export(path, trusted_keys=[writer.signer.public_raw])
    assert [p.kind for p in report.problems] == ["edited"]
    assert f"policy text for version {VERSION} does not hash to it" in report.problems[0].message
