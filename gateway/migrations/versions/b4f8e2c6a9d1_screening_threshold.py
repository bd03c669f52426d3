"""customers.screening_threshold: the match threshold each screening used

Revision ID: b4f8e2c6a9d1
Revises: 916e0a90be24
Create Date: 2026-11-28 11:40:00.000000

``gateway serve`` screened every customer again when the list in force was
new to any of them, but not when ``GATEWAY_SANCTIONS_THRESHOLD`` was lowered
(a name clear at 0.92 may be a potential match at 0.85): the threshold was
not stored. Records screened before this revision have none (NULL) and are
screened once more at the next start with a list (``gateway.kyc.list_update``);
one screened against the list in force is not held meanwhile
(``gateway.identity.screening_summary.awaiting_rescreen``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b4f8e2c6a9d1"
down_revision: str | None = "916e0a90be24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("screening_threshold", sa.Float(), nullable=True))


def downgrade() -> None:
    # recreate="never": no table copy on SQLite (see c7d3a1f5b9e2's downgrade).
    with op.batch_alter_table("customers", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("screening_threshold")
