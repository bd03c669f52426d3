"""stored_response_owners.capabilities and message_batch_owners.capabilities:
what a create was decided with, for the calls on it by id

Revision ID: d2e6b8a4c1f7
Revises: c7d3a1f5b9e2
Create Date: 2026-11-28 07:00:00.000000

A call by id (retrieve, results, cancel, delete, input items) hands over the
output of the create that made it, so it is decided with the capabilities
that create was decided with (a batch: the union of its requests'), and a
rule added later that refuses one of them (an emergency directive) refuses
the call too. Rows from before this revision have none (null): their calls
by id are decided with the model's baseline capabilities only, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d2e6b8a4c1f7"
down_revision: str | None = "c7d3a1f5b9e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("stored_response_owners", "message_batch_owners")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("capabilities", sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("capabilities")
