"""message_batch_owners.unsettled: what a batch's create reserved, per quota
group, until its results show what its requests used

Revision ID: e8b4c2a6d1f3
Revises: f3b7d9a2c6e1
Create Date: 2026-11-28 08:45:00.000000

A batch create is charged its inner requests' reservations (output bound plus
an input estimate); the results show what the upstream really counted. The
results downloads that show more charge the difference, once between them
across replicas (``gateway.proxy.batch_charge``): each group here also keeps
what has been charged beyond its reservation so far, moved by a
compare-and-set. Rows from before this revision have none: never charged more.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e8b4c2a6d1f3"
down_revision: str | None = "f3b7d9a2c6e1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message_batch_owners") as batch:
        batch.add_column(sa.Column("unsettled", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message_batch_owners") as batch:
        batch.drop_column("unsettled")
