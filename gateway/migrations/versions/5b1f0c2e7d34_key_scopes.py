"""api_keys.allowed_models / allowed_capabilities: keys narrowed below their customer

Revision ID: 5b1f0c2e7d34
Revises: 5c1e2d7f9a30
Create Date: 2026-11-28 03:00:00.000000

Two nullable JSON lists. NULL (every existing key) means "whatever the
customer's tier allows", so the upgrade changes no key's behaviour, and
replicas still on the previous version during a rolling deploy ignore the
columns (a scoped key created meanwhile is served unscoped by them until they
are upgraded: create scoped keys after the rollout).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1f0c2e7d34"
down_revision: str | None = "5c1e2d7f9a30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_models", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("allowed_capabilities", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("allowed_capabilities")
        batch_op.drop_column("allowed_models")
