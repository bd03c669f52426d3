"""The ``sqlite3`` connection class behind every SQLite connection of the engine.

Why a class of our own: a transaction cut short by a cancellation kept
SQLite's write lock after its task had ended, and every other writer (the
audit log among them: 503 for every customer) failed "database is locked".

The chain, read in SQLAlchemy 2.1 / aiosqlite 0.22 / CPython 3.11:

1. aiosqlite runs each call on the connection's own thread; a cancelled
   ``await`` only stops waiting, the call still runs. A row-returning
   statement (``INSERT ... RETURNING``, which the ORM uses to fetch keys, or a
   ``SELECT``) is two calls: ``execute``, which steps the statement to its
   first row and leaves it *active*, then ``fetchall``, which SQLAlchemy
   queues only once ``execute`` has returned. Cancelled in between, the fetch
   never runs and the statement stays active.
2. SQLAlchemy treats a driver call interrupted by a cancellation as a
   disconnect: it invalidates the connection, which closes it without a
   ROLLBACK (its state is unknown). That part is right.
3. ``sqlite3.Connection.close()`` is ``sqlite3_close_v2``: with a statement
   not yet finalized it leaves a "zombie" connection that keeps its open
   transaction, and so the write lock, until the last statement is finalized.
   That happens when the ``sqlite3.Cursor`` holding it is freed, and the
   cancellation's traceback keeps it in a reference cycle: only the garbage
   collector's next full collection, seconds to minutes later, let go.

``close()`` here first closes the cursors still open (which resets and
releases their statements: no zombie, and a cancelled read lets go of its
snapshot, which otherwise kept any checkpoint from resetting the WAL), then
rolls an open transaction back (ROLLBACK succeeds with statements still
active: they are aborted). It runs on the driver's thread (aiosqlite closes
there). Every way the engine closes a connection goes through it:
invalidation, pool overflow and recycling, ``dispose()``, and aiosqlite's own
clean-up of a connection dropped unclosed. Tracking a cursor costs about a
microsecond per statement, against the tens of a thread hop; the audit
writer's hot path has its own connection (``gateway.audit.sqlite_fast``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import weakref
from typing import Any


class RollbackOnClose(sqlite3.Connection):
    """A ``sqlite3`` connection that ends its statements and its transaction
    before it closes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cursors: weakref.WeakSet[sqlite3.Cursor] = weakref.WeakSet()

    def cursor(self, factory: Any = sqlite3.Cursor) -> Any:
        # aiosqlite (and so SQLAlchemy) runs every statement on a cursor made here.
        cursor = super().cursor(factory)
        self._cursors.add(cursor)
        return cursor

    def close(self) -> None:
        # Errors here are secondary (a broken handle: SQLite still ends the
        # transaction when the last statement goes) or expected: on a closed
        # connection ``in_transaction`` raises, and aiosqlite may close twice (a
        # terminate's graceful close, then its forced stop); an error in the
        # second kept aiosqlite's thread from ever exiting. close() always runs.
        with contextlib.suppress(sqlite3.Error):
            for cursor in list(self._cursors):
                with contextlib.suppress(sqlite3.Error):
                    cursor.close()
            if self.in_transaction:
                self.rollback()
        super().close()
