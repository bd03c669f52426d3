"""stored_response_owners.model and .unsettled_tokens: a stored response's model, and
what its background create was charged until a retrieval shows its usage

Revision ID: b4c2e8f1a3d7
Revises: 7e3a9b1c2d45
Create Date: 2026-11-28 05:45:00.000000

Retrieving, deleting or cancelling a stored response by id is decided by the
policy as a request for the model that made it (``gateway.proxy.stored_routes``).
Bindings from before this revision have no model: those responses can still
be continued by their customer, but calls on them by id are refused (404),
since no policy decision can be taken for an unknown model.

``unsettled_tokens``: a create answered without usage (background mode) keeps
its reservation charged; the first retrieval that shows the finished
response's usage charges what it used beyond that, once (docs/quotas.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b4c2e8f1a3d7"
down_revision: str | None = "7e3a9b1c2d45"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stored_response_owners") as batch:
        batch.add_column(sa.Column("model", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("unsettled_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stored_response_owners") as batch:
        batch.drop_column("unsettled_tokens")
        batch.drop_column("model")
