"""Bulk-generate a valid, signed audit log straight into SQLite (for size tests):
same canonical bodies, chain and checkpoints as the writer, without its latency.

Fast path for a million records: the 30 distinct record shapes ``make_record``
produces (it varies by ``i % 2``, ``% 3``, ``% 5``) are built once; per record
only ``id``, ``ts``, ``node_id`` and ``seq`` change. ``audit_records``' indexes
are dropped for the load and rebuilt at the end (one sorted build per index
instead of a million B-tree inserts each), then checked to exist again.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.audit.batch import sqlite_time
from gateway.audit.chain import GENESIS, canonical, chain_hash, decision_fields, index_columns
from gateway.audit.ids import new_id
from gateway.audit.signing import Signer, checkpoint_payload
from tests.audit.conftest import make_record

START = datetime(2026, 1, 1, tzinfo=UTC)
_SHAPES = 30


def _shapes() -> list[tuple[dict[str, Any], list[str]]]:
    shapes = []
    for i in range(_SHAPES):
        rec = make_record(i)
        shapes.append((decision_fields(rec, "none"), list(rec.rule_ids)))
    return shapes


def generate_log(db: Path, n: int, signer: Signer, node_id: str = "bulk",
                 checkpoint_every: int = 1000, chunk: int = 20_000) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("INSERT OR IGNORE INTO audit_keys VALUES (?, ?, ?)",
                 (signer.fingerprint, signer.public_b64, sqlite_time(START)))
    indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                           "tbl_name = 'audit_records' AND sql IS NOT NULL").fetchall()
    for name, _sql in indexes:
        conn.execute(f"DROP INDEX {name}")
    shapes = _shapes()
    step = timedelta(milliseconds=10)
    prev, seq, ts = GENESIS, 0, START
    while seq < n:
        rows, rules, cps = [], [], []
        for _ in range(min(chunk, n - seq)):
            seq += 1
            ts += step
            base, rule_ids = shapes[seq % _SHAPES]
            fields = dict(base)
            fields["id"] = record_id = new_id(int(ts.timestamp() * 1000))
            fields["ts"], fields["node_id"], fields["seq"] = ts, node_id, seq
            body = canonical(fields)
            digest = chain_hash(prev, body)
            cols = index_columns(fields)
            rows.append((record_id, node_id, seq, "decision", sqlite_time(ts),
                         cols["customer_id"], cols["decision"], cols["status"], cols["model"],
                         cols["origin_country"], cols["origin_region"], None,
                         body.decode(), prev, digest))
            rules += [(r, record_id) for r in rule_ids]
            prev = digest
            if seq % checkpoint_every == 0:
                payload = checkpoint_payload("checkpoint", node_id, seq, prev,
                                             checkpoint_every, ts)
                cps.append(("checkpoint", node_id, seq, prev, checkpoint_every, sqlite_time(ts),
                            signer.fingerprint, payload.decode(), signer.sign(payload)))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO audit_records (id, node_id, seq, kind, ts, customer_id, decision, "
            "status, model, origin_country, origin_region, decision_id, body, prev_hash, hash) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.executemany("INSERT INTO audit_decision_rules (rule_id, decision_id) VALUES (?, ?)",
                         rules)
        conn.executemany(
            "INSERT INTO audit_checkpoints (kind, node_id, seq, head_hash, count, ts, "
            "key_fingerprint, payload, signature) VALUES (?,?,?,?,?,?,?,?,?)", cps)
        conn.execute("COMMIT")
    for _name, sql in indexes:
        conn.execute(sql)
    rebuilt = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                          "AND tbl_name = 'audit_records'")}
    assert {name for name, _ in indexes} <= rebuilt
    now = sqlite_time(START)
    conn.execute("INSERT INTO audit_nodes VALUES (?, ?, ?, NULL, ?, ?)",
                 (node_id, seq, prev, now, now))
    conn.close()
