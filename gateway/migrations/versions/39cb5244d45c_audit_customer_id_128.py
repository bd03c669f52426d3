"""audit customer ids hold 128 characters, as customer ids do

Revision ID: 39cb5244d45c
Revises: a9d1769e1ee6
Create Date: 2026-11-27 18:30:00.000000

The admin API takes customer ids of up to 128 characters
(``gateway.kyc.schemas.ID_PATTERN``, ``customers.id`` is VARCHAR(128)), but
``audit_records.customer_id`` and ``audit_legal_holds.customer_id`` held 64:
on PostgreSQL every audit write for such a customer failed ("value too long"),
and with it the whole group-commit batch it rode in. On PostgreSQL widening a
VARCHAR is a catalogue change (no table rewrite); SQLite, which ignores the
length, copies the tables (batch mode; the partial indexes are reflected and
recreated with their predicates).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "39cb5244d45c"
down_revision: str | None = "a9d1769e1ee6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("audit_records", "audit_legal_holds")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("customer_id", existing_type=sa.String(length=64),
                                  type_=sa.String(length=128), existing_nullable=True)


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("customer_id", existing_type=sa.String(length=128),
                                  type_=sa.String(length=64), existing_nullable=True)
