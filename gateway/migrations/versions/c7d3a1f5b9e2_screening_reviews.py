"""screening_reviews: what a compliance review cleared, hit by hit

Revision ID: c7d3a1f5b9e2
Revises: c7d1e5a9f2b3
Create Date: 2026-11-28 06:20:00.000000

A customer has several screened names (its own and its owners'); screening
kept only the strongest hit, and a review's clearance was read off it, so a
new, weaker hit on another name hid behind a cleared one. Each screening now
stores every hit (``customers.screening_hits``) and a review records each
(screened name, listed name) pair it cleared (``screening_reviews``).

Existing reviews: a ``clear`` customer with a stored best match may have been
cleared by a review of that hit (or its score was below the threshold: no
hit, which the threshold check at screening time tells apart, as before). It
keeps that review as a row with an unknown screened name (NULL), the listed
name and score stored, cleared at the record's last update, by "migration".
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c7d3a1f5b9e2"
down_revision: str | None = "c7d1e5a9f2b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("screening_hits", sa.JSON(), nullable=True))
    reviews = op.create_table(
        "screening_reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("screened_name", sa.String(length=512), nullable=True),
        sa.Column("listed_name", sa.String(length=512), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_screening_reviews_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_reviews")),
    )
    with op.batch_alter_table("screening_reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_screening_reviews_customer_id"), ["customer_id"], unique=False
        )
    # One INSERT ... SELECT: the same on SQLite and PostgreSQL, however many customers.
    customers = sa.table(
        "customers",
        sa.column("id", sa.String()),
        sa.column("sanctions_status", sa.String()),
        sa.column("screening_best_match", sa.String()),
        sa.column("screening_score", sa.Float()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    assert reviews is not None
    cleared = sa.select(
        customers.c.id,
        sa.null(),
        customers.c.screening_best_match,
        customers.c.screening_score,
        customers.c.updated_at,
        sa.literal("migration"),
    ).where(
        customers.c.sanctions_status == "clear",
        customers.c.screening_best_match.is_not(None),
    )
    op.execute(
        reviews.insert().from_select(
            ["customer_id", "screened_name", "listed_name", "score", "cleared_at", "cleared_by"],
            cleared,
        )
    )


def downgrade() -> None:
    # Reviews made since are lost; the best match on each record is kept, and
    # a clear record's best match reads as reviewed again, as before.
    with op.batch_alter_table("screening_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_screening_reviews_customer_id"))
    op.drop_table("screening_reviews")
    # No table copy (recreate="never": SQLite 3.35+ drops a column in place):
    # on SQLite a copy drops the old customers table, and with foreign keys on
    # that deletes every key and ownership row referencing it (ON DELETE CASCADE).
    with op.batch_alter_table("customers", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("screening_hits")
