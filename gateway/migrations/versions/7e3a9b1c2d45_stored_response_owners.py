"""stored_response_owners: the customer each upstream-stored response belongs to

Revision ID: 7e3a9b1c2d45
Revises: 5b1f0c2e7d34
Create Date: 2026-11-28 03:20:00.000000

The Responses API stores answers upstream under the gateway's one credential;
continuing one by ``previous_response_id`` is refused unless the gateway
relayed that response to the same customer (``gateway.proxy.stored_state``).
Responses relayed before this revision have no owner recorded, so continuing
them is refused (404) after the upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7e3a9b1c2d45"
down_revision: str | None = "5b1f0c2e7d34"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stored_response_owners",
        sa.Column("response_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("response_id"),
    )


def downgrade() -> None:
    op.drop_table("stored_response_owners")
