"""The SQLite hot path: one thread hop per batch, and WAL checkpoints off the hot path.

Through SQLAlchemy + aiosqlite a batch costs ~10 round trips to the driver
thread (begin, update, insert, insert, commit, cursor handling). Here the
whole transaction — head compare-and-set, ``executemany`` of the prebuilt row
tuples and rule ids, optional checkpoint, COMMIT — runs in one call on a
dedicated thread with its own ``sqlite3`` connection, doing as little Python
as possible (it holds the GIL while it does). PostgreSQL keeps the SQLAlchemy
Core path (asyncpg has no thread hops).

WAL: with the default ``wal_autocheckpoint`` SQLite copies the WAL back into
the database inside whichever COMMIT crosses 1000 pages: 4-9 ms added to that
batch. ``WalCheckpointer`` instead runs ``PRAGMA wal_checkpoint(PASSIVE)``
every 0.2 s from its own thread and connection (PASSIVE never blocks the
writer); the writer's own auto-checkpoint threshold is raised to a backstop
that only matters if the checkpointer falls behind.

Connections open the file with ``mode=rw``: a deleted or moved database is an
error, never a fresh empty file created at the old path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.audit.batch import (
    INSERT_SNAPSHOT,
    RECORD_COLS,
    RULE_COLS,
    BatchWrite,
    ChainConflict,
    sqlite_time,
)
from gateway.audit.tables import audit_checkpoints

__all__ = ["ChainConflict", "SqliteBatchStore", "StoreMoved", "WalCheckpointer", "sqlite_time"]

log = logging.getLogger(__name__)

WAL_BACKSTOP_PAGES = 20_000
"""~80 MB of WAL before a COMMIT checkpoints by itself (checkpointer stalled or gone)."""
CHECKPOINT_INTERVAL_S = 0.2
"""Small and often: a checkpoint's copy competes for the core with requests, so
its length shows in the latency tail. Measured interleaved (bench, 3 rounds
each, 2 runs): one connection p99 +2.2-2.35 ms at 0.2 s against +2.3-4.0 ms at
1 s and +4.5 ms at 10 s; eight connections p99 +6.7-8.6 against +7.2-9.6
(+19.8 at 10 s); throughput within the runs' spread."""


def _insert_sql(table_name: str, columns: Sequence[str], rows: int = 1) -> str:
    values = f"({', '.join('?' for _ in columns)})"
    return (f"INSERT INTO {table_name} ({', '.join(columns)}) "
            f"VALUES {', '.join(values for _ in range(rows))}")


ROWS_PER_INSERT = 32
"""Rows per multi-row INSERT statement (at most ``ROWS_PER_INSERT`` distinct statements).

Why not ``executemany``: the sqlite3 module releases and re-takes the GIL
around every ``sqlite3_step``, i.e. once per row. While the event loop is busy,
each re-take waits for the loop thread to let go of the GIL, which on one core
is a context switch (and up to the 5 ms switch interval of latency) per row.
One statement for many rows is one step: a batch costs a handful of GIL
round trips whatever its size."""

_CP_COLS = [c.name for c in audit_checkpoints.columns if c.name != "id"]
# By row count, 1..ROWS_PER_INSERT: the statement for a chunk of that many rows.
_INSERT_RECORDS = {n: _insert_sql("audit_records", RECORD_COLS, n)
                   for n in range(1, ROWS_PER_INSERT + 1)}
_INSERT_RULES = {n: _insert_sql("audit_decision_rules", RULE_COLS, n)
                 for n in range(1, ROWS_PER_INSERT + 1)}
_INSERT_CP = _insert_sql("audit_checkpoints", _CP_COLS)
_INSERT_SNAPSHOT = INSERT_SNAPSHOT.format("?, ?, ?")
_SELECT_OTHERS = ("SELECT node_id, last_seq, last_hash FROM audit_nodes "
                  "WHERE node_id != ? AND last_seq > 0")
"""The other chains' committed heads, for the checkpoint a batch carries to sign."""
_UPDATE_HEAD = ("UPDATE audit_nodes SET last_seq = ?, last_hash = ?, heartbeat_at = ? "
                "WHERE node_id = ? AND owner = ? AND last_seq = ?")


class StoreMoved(Exception):
    """The SQLite file this writer has open is no longer at its path."""


def _identity(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise StoreMoved(f"database file {path} is gone: {exc}") from exc
    return (st.st_dev, st.st_ino)


def _connect(path: str, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    uri = f"{Path(path).absolute().as_uri()}?mode=rw"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout_ms / 1000)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
        # A multi-row INSERT inside a transaction needs a statement journal (to
        # undo just that statement on a constraint error); keep it in memory
        # instead of a temp file created and unlinked under /var/tmp each time.
        conn.execute("PRAGMA temp_store=MEMORY")
    except BaseException:
        conn.close()
        raise
    return conn


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled meanwhile
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


class _Worker:
    """One thread running calls in order; hands results back with one loop wake-up.

    Cheaper than ``run_in_executor`` (measured here: ~10 us of event-loop CPU per
    hop instead of ~30 us): no concurrent Future chained to an asyncio one.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[[], None]) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._calls.put((loop, future, fn))
        return future

    def shutdown(self) -> None:
        """Let the thread finish the calls it has and exit (does not wait)."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread = None

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            loop, future, fn = item
            error: BaseException | None = None
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, future, error)
            except RuntimeError:
                log.error("audit store call finished after its event loop closed: %s", error)


_Call = tuple[asyncio.AbstractEventLoop, asyncio.Future[None], Callable[[], None]]


def _insert_rows(conn: sqlite3.Connection, statements: dict[int, str],
                 rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``rows`` with one multi-row statement per ``ROWS_PER_INSERT`` rows."""
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start:start + ROWS_PER_INSERT]
        conn.execute(statements[len(chunk)], [value for row in chunk for value in row])


class SqliteBatchStore:
    def __init__(self, path: str, synchronous: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._worker = _Worker("audit-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None

    async def commit(self, batch: BatchWrite) -> None:
        await self._worker.call(functools.partial(self._commit, batch))

    async def reset(self) -> None:
        """Drop the connection (it may point at a moved or deleted file); reopen on next use."""
        await self._worker.call(self._close)

    async def close(self) -> None:
        await self._worker.call(self._close)
        self._worker.shutdown()

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            identity = _identity(self._path)
            self._conn = _connect(self._path, self._synchronous, self._busy_timeout_ms)
            self._identity = identity
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
            _insert_rows(conn, _INSERT_RECORDS, b.rows)
            _insert_rows(conn, _INSERT_RULES, b.rule_rows)
            if b.snapshots:
                now = sqlite_time(b.now)
                conn.executemany(_INSERT_SNAPSHOT, [(d, t, now) for d, t in b.snapshots])
            if b.make_checkpoint is not None:
                b.checkpoint = b.make_checkpoint(
                    {str(node): (int(seq), str(head)) for node, seq, head
                     in conn.execute(_SELECT_OTHERS, (b.node_id,))})
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
        # WAL mode happily commits into a file that was deleted or moved (the open
        # descriptor still works): such a COMMIT is not durable where anyone will
        # look, so it must not be acknowledged.
        if _identity(self._path) != self._identity:
            self._close()
            raise StoreMoved("the database file was replaced or moved since it was opened")


class WalCheckpointer:
    """``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval`` seconds on its own thread."""

    def __init__(self, path: str, synchronous: str,
                 interval: float = CHECKPOINT_INTERVAL_S) -> None:
        self._path = path
        self._synchronous = synchronous
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="audit-wal-checkpoint",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        identity: tuple[int, int] | None = None
        failing = False
        while not self._stop.wait(self._interval):
            try:
                if conn is not None and _identity(self._path) != identity:
                    conn.close()  # the file was replaced: follow the path
                    conn = None
                if conn is None:
                    identity = _identity(self._path)
                    conn = _connect(self._path, self._synchronous, 1000)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.runs += 1
                failing = False
            except (sqlite3.Error, StoreMoved) as exc:
                # Not fatal for the log (commits go on; the backstop auto-checkpoint
                # bounds the WAL), but it must be visible: say it once per outage.
                if not failing:
                    log.warning("audit WAL checkpoint failed (will retry): %s", exc)
                failing = True
                if conn is not None:
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()
