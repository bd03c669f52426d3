"""stored_response_owners.context_tokens: what continuing a stored response
makes the upstream read again

Revision ID: f3b7d9a2c6e1
Revises: e5a1c9d3b7f2
Create Date: 2026-11-28 08:50:00.000000

A request with ``previous_response_id`` has the upstream read the stored
conversation (its input and output) again as input, and bill it so; the
request's body carries only the new turn. The usage the stored response
showed is kept here, and a continuation reserves it against token quotas
(``gateway.proxy.pipeline``). Rows from before this revision, and responses
whose usage was never seen (background mode), have none (null): a
continuation of them reserves its own body only, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f3b7d9a2c6e1"
down_revision: str | None = "e5a1c9d3b7f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stored_response_owners") as batch:
        batch.add_column(sa.Column("context_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stored_response_owners") as batch:
        batch.drop_column("context_tokens")
