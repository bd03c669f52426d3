"""customers.version: a counter every write of the row moves

Revision ID: d9f4b2a7c3e1
Revises: a4c8e2f6b1d9
Create Date: 2026-11-28 15:00:00.000000

A read-then-write of customers (a rescreen batch, an officer's PATCH) told
a row changed since it read it by its ``updated_at``, ``sanctions_status``
and ``screened_at``: two writes with one clock reading left all three as
they were, and the batch wrote its verdict for the old name over a rename.
The ORM's version counter now adds one to ``version`` in every UPDATE of
the row (``gateway.kyc.customer_locks``). Existing rows start at 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d9f4b2a7c3e1"
down_revision: str | None = "a4c8e2f6b1d9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # recreate="never": SQLite adds the column in place (its default is a
    # constant). A copy of the table would drop the old one, and with foreign
    # keys on that cascades to every key, owner and review of its customers.
    with op.batch_alter_table("customers", schema=None, recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("version")
