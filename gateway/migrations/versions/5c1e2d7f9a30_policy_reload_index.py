"""an index of the policy_reload records, which carry the policy texts

Revision ID: 5c1e2d7f9a30
Revises: 39cb5244d45c
Create Date: 2026-11-28 03:00:00.000000

Each ``policy_reload`` record now carries the bundle's canonical text, whose
SHA-256 is the version decisions name (``gateway/audit/policy_texts.py``).
Finding the text of a version reads those records only: a partial index on
``kind = 'policy_reload'`` (one row per start or reload; no decision or
outcome enters it, so the request path's commits do not pay for it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1e2d7f9a30"
down_revision: str | None = "39cb5244d45c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = "kind = 'policy_reload'"


def upgrade() -> None:
    op.create_index("ix_audit_records_policy_reload", "audit_records", ["id"], unique=False,
                    sqlite_where=sa.text(_WHERE), postgresql_where=sa.text(_WHERE))


def downgrade() -> None:
    op.drop_index("ix_audit_records_policy_reload", table_name="audit_records")
