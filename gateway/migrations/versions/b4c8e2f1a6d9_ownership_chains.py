"""ownership_chains: an owning entity's name and its own owners

Revision ID: b4c8e2f1a6d9
Revises: b4c2e8f1a3d7
Create Date: 2026-11-28 05:45:00.000000

An organization's direct owner may be an entity with owners of its own (a KYB
vendor's ownership tree): OFAC's 50% rule counts ownership "directly or
indirectly" (``gateway.identity.ownership``). Each ``customer_ownership`` row
gains the entity's ``name`` and its ``owners`` (a JSON tree). Both are
nullable: existing rows are flat owners and keep their meaning.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b4c8e2f1a6d9"
down_revision: str | None = "b4c2e8f1a3d7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customer_ownership", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("owners", sa.JSON(), nullable=True))


def downgrade() -> None:
    # The chains are lost: every row is read as a flat owner again.
    with op.batch_alter_table("customer_ownership", schema=None) as batch_op:
        batch_op.drop_column("owners")
        batch_op.drop_column("name")
