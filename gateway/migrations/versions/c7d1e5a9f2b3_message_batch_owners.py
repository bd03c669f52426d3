"""message_batch_owners: the customer each Message Batch belongs to, and its models

Revision ID: c7d1e5a9f2b3
Revises: b4c8e2f1a6d9
Create Date: 2026-11-28 06:00:00.000000

The upstream sees one account for every customer, so the gateway binds each
batch id it relays to the customer that created it, before the create's
answer reaches them (``gateway.proxy.batch_state``). Calls on the batch by id
(retrieve, results, cancel, delete) are decided as requests for its models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c7d1e5a9f2b3"
down_revision: str | None = "b4c8e2f1a6d9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_batch_owners",
        sa.Column("batch_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("batch_id"),
    )
    op.create_index(
        "ix_message_batch_owners_customer_id", "message_batch_owners", ["customer_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_message_batch_owners_customer_id", table_name="message_batch_owners")
    op.drop_table("message_batch_owners")
