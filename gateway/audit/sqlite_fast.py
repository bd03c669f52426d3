"""The SQLite hot path: one thread hop per batch instead of one per statement.

Through SQLAlchemy + aiosqlite a batch costs ~10 round trips to the driver
thread (begin, update, insert, insert, commit, cursor handling), which alone
exceeds the latency budget of a single request. Here the whole transaction —
head compare-and-set, ``executemany`` of the records and rule ids, optional
checkpoint, COMMIT — runs in one call on a dedicated thread with its own
``sqlite3`` connection. PostgreSQL keeps the SQLAlchemy Core path (asyncpg
has no thread hops).

Values are stored exactly as SQLAlchemy's SQLite dialect stores them (UTC
times as ``YYYY-MM-DD HH:MM:SS.ffffff``), so the ORM and Core read them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.audit.chain import utc
from gateway.audit.tables import audit_checkpoints, audit_decision_rules, audit_records


class ChainConflict(Exception):
    """The head compare-and-set failed: another writer owns or moved this chain."""


@dataclass(slots=True)
class BatchWrite:
    node_id: str
    owner: str
    old_seq: int
    new_seq: int
    new_hash: str
    now: datetime
    rows: list[dict[str, Any]]
    rule_rows: list[dict[str, str]]
    checkpoint: dict[str, Any] | None


def _insert_sql(table_name: str, columns: list[str]) -> str:
    return (f"INSERT INTO {table_name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})")


_RECORD_COLS = [c.name for c in audit_records.columns]
_RULE_COLS = [c.name for c in audit_decision_rules.columns]
_CP_COLS = [c.name for c in audit_checkpoints.columns if c.name != "id"]
_INSERT_RECORD = _insert_sql(audit_records.name, _RECORD_COLS)
_INSERT_RULE = _insert_sql(audit_decision_rules.name, _RULE_COLS)
_INSERT_CP = _insert_sql(audit_checkpoints.name, _CP_COLS)
_UPDATE_HEAD = ("UPDATE audit_nodes SET last_seq = ?, last_hash = ?, heartbeat_at = ? "
                "WHERE node_id = ? AND owner = ? AND last_seq = ?")


def sqlite_time(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")


class SqliteBatchStore:
    def __init__(self, path: str, synchronous: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="audit-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def commit(self, batch: BatchWrite) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._commit, batch)

    async def reset(self) -> None:
        """Drop the connection (it may point at a moved or deleted file); reopen on next use."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                   timeout=self._busy_timeout_ms / 1000)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _commit(self, b: BatchWrite) -> None:
        conn = self._open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(_UPDATE_HEAD, (b.new_seq, b.new_hash, sqlite_time(b.now),
                                              b.node_id, b.owner, b.old_seq))
            if cur.rowcount != 1:
                raise ChainConflict(f"chain {b.node_id} moved or was taken over")
            conn.executemany(_INSERT_RECORD, [
                tuple(sqlite_time(r[c]) if c == "ts" else r[c] for c in _RECORD_COLS)
                for r in b.rows])
            if b.rule_rows:
                conn.executemany(_INSERT_RULE, [tuple(r[c] for c in _RULE_COLS)
                                                for r in b.rule_rows])
            if b.checkpoint is not None:
                cp = b.checkpoint
                conn.execute(_INSERT_CP, tuple(sqlite_time(cp[c]) if c == "ts" else cp[c]
                                               for c in _CP_COLS))
            conn.execute("COMMIT")
        except BaseException:
            # Whatever failed, the transaction must not stay open; reconnect next time.
            # A failing ROLLBACK is secondary: the original error is what propagates.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._close()
            raise
