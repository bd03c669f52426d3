"""audit_ownership_snapshots: ownership trees decision records name by digest

Revision ID: a4c8e2f6b1d9
Revises: b4f8e2c6a9d1
Create Date: 2026-11-28 11:40:00.000000

A decision record of a customer with a large ownership tree names the tree by
the SHA-256 of its canonical JSON (``facts.principal.ownership_sha256``)
instead of carrying it; the tree is stored here once, in the transaction of
the first record that names it (``gateway.audit.ownership_snapshots``).
Records written before this carry their trees inline and stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a4c8e2f6b1d9"
down_revision: str | None = "b4f8e2c6a9d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_ownership_snapshots",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    op.drop_table("audit_ownership_snapshots")
