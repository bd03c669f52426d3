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

``close()`` here rolls an open transaction back first. It runs on the
driver's thread (aiosqlite closes there), ROLLBACK succeeds with statements
still active (they are aborted), and a connection closed with no transaction
open has nothing to keep. Every way the engine closes a connection goes
through it: invalidation, pool overflow and recycling, ``dispose()``, and
aiosqlite's own clean-up of a connection dropped unclosed.
"""

from __future__ import annotations

import contextlib
import sqlite3


class RollbackOnClose(sqlite3.Connection):
    """A ``sqlite3`` connection that ends its transaction before it closes."""

    def close(self) -> None:
        if self.in_transaction:
            # Secondary if it fails (a broken handle): close() below still runs,
            # and SQLite ends the transaction when the last statement goes.
            with contextlib.suppress(sqlite3.Error):
                self.rollback()
        super().close()
