"""How ``log.json`` and the ``export.*`` files here were made: by the gateway
as it was before report mode (commit 604f3ab), run from a checkout of it:

    cd <checkout of 604f3ab> && python <this file> <output directory>

It writes six decisions and one outcome through the real AuditWriter (chain
``test-node``, signed with ``KEY`` below, final checkpoint at stop), then dumps
the audit tables as JSON and exports the log as JSONL and CSV with that
version's exporter. tests/audit/test_report_records.py loads them to check
that logs and exports written before the decision record had
``report_rule_ids`` still verify, alongside new records. Re-running it with
today's gateway would write version 2 records: it is kept as documentation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import select

import gateway.db.models  # noqa: F401
from gateway.audit.export import Exporter
from gateway.audit.ids import new_id
from gateway.audit.query import DecisionFilters
from gateway.audit.record import OutcomeRecord
from gateway.audit.signing import load_signer
from gateway.audit.tables import (
    audit_checkpoints,
    audit_decision_rules,
    audit_keys,
    audit_nodes,
    audit_records,
)
from gateway.audit.writer import AuditWriter
from gateway.db.base import Base
from gateway.db.session import create_engine, session_factory
from tests.audit.conftest import make_record, make_settings

KEY = base64.b64encode(hashlib.sha256(b"gateway test key: audit v1 fixture").digest()).decode()
TABLES = (audit_records, audit_decision_rules, audit_nodes, audit_checkpoints, audit_keys)


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    settings = make_settings(out / "v1.db", audit_signing_key=KEY)
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    writer = AuditWriter(engine, settings, load_signer(settings))
    await writer.start()
    for i in range(6):
        await writer.record(make_record(i))
    await writer.record_outcome(OutcomeRecord(new_id(), datetime.now(UTC), "X" * 26, 200, 5, 7))
    await writer.stop()
    dump: dict[str, list[dict[str, object]]] = {}
    async with engine.connect() as conn:
        for table in TABLES:
            rows = (await conn.execute(select(table))).mappings().all()
            dump[str(table.name)] = [{str(k): v for k, v in row.items() if k != "id" or
                                 table is not audit_checkpoints} for row in rows]
    (out / "log.json").write_bytes(orjson.dumps(dump, option=orjson.OPT_INDENT_2 |
                                                orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z))
    sessions = session_factory(engine)
    for fmt in ("jsonl", "csv"):
        exporter = Exporter(sessions, DecisionFilters(), fmt)  # type: ignore[arg-type]
        with (out / f"export.{fmt}").open("wb") as fh:
            async for line in exporter.lines():
                fh.write(line)
        if fmt == "csv":
            (out / "export.csv.manifest.json").write_bytes(orjson.dumps(exporter.manifest))
    await engine.dispose()
    (out / "v1.db").unlink()
    for extra in out.glob("v1.db-*"):
        extra.unlink()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
