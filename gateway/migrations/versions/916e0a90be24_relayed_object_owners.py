"""relayed_object_owners: the customer each upstream item and container id belongs to

Revision ID: 916e0a90be24
Revises: e8b4c2a6d1f3
Create Date: 2026-11-28 09:20:00.000000

Stored Responses items (named by ``item_reference`` or an input item's ``id``)
and code-execution containers (OpenAI ``code_interpreter`` ``container``,
Anthropic ``container``) live upstream under the gateway's one credential; a
request naming one is refused unless the gateway relayed it to the same
customer (``gateway.proxy.reference_owners``). Ids relayed before this
revision have no owner recorded, so naming them is refused (404) after the
upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "916e0a90be24"
down_revision: str | None = "e8b4c2a6d1f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "relayed_object_owners",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "object_id"),
    )


def downgrade() -> None:
    op.drop_table("relayed_object_owners")
