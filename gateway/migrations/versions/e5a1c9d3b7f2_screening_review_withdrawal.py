"""screening_reviews: a review's withdrawal (who, when, why)

Revision ID: e5a1c9d3b7f2
Revises: d2e6b8a4c1f7
Create Date: 2026-11-28 08:45:00.000000

Setting a customer back to ``potential_match`` or ``confirmed_match`` kept
every clearance of its hits, so a rescreen or a later change still read those
pairs as harmless. Such a status now withdraws every review of the customer;
the review row records who withdrew it, when and why. Existing rows are
reviews in force (NULL: not withdrawn).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5a1c9d3b7f2"
down_revision: str | None = "d2e6b8a4c1f7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("screening_reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("withdrawn_by", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("withdrawn_reason", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    # A withdrawn review would read as in force again: drop those rows first,
    # the customers they belonged to are not clear (a withdrawal set them so).
    op.execute("DELETE FROM screening_reviews WHERE withdrawn_at IS NOT NULL")
    # recreate="never": no table copy on SQLite (see c7d3a1f5b9e2's downgrade).
    with op.batch_alter_table("screening_reviews", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("withdrawn_reason")
        batch_op.drop_column("withdrawn_by")
        batch_op.drop_column("withdrawn_at")
