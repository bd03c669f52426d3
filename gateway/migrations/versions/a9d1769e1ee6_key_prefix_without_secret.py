"""api_keys.prefix holds no secret material: scrub what was stored

Revision ID: a9d1769e1ee6
Revises: 10d33434623d
Create Date: 2026-12-02 10:00:00.000000

Until this revision a key's displayable ``prefix`` was ``gk_<id>_`` followed
by the first four characters of its secret, in ``api_keys.prefix`` and in the
``key.create`` / ``key.revoke`` entries of ``admin_actions`` (their ``before``
and ``after`` snapshots). SPEC: only a hash of the secret is stored. From now
on the prefix is ``gk_<id>``, the part of the key that was never secret; this
rewrites every stored one to that form. The column keeps its name and type,
so replicas still running the previous version keep working during a rolling
deploy (a key one of them creates meanwhile shows its four characters until
the column is rewritten again by hand: ``UPDATE api_keys SET prefix = 'gk_' ||
id``). The admin-action rows are otherwise left as they were.

Downgrade leaves the scrubbed values: the removed characters cannot be
recovered (only their hash was kept), and ``gk_<id>`` is a valid prefix for
the previous version too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "a9d1769e1ee6"
down_revision: str | None = "10d33434623d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_KIND = "gk"
# Rows are rewritten in batches so a large admin-action log is not held in memory.
BATCH = 1000

api_keys = sa.table("api_keys", sa.column("id", sa.String), sa.column("prefix", sa.String))
admin_actions = sa.table(
    "admin_actions",
    sa.column("id", sa.Integer),
    sa.column("target_type", sa.String),
    sa.column("target_id", sa.String),
    sa.column("before", sa.JSON),
    sa.column("after", sa.JSON),
)


def _scrubbed(entry: Any, prefix: str) -> Any:
    if isinstance(entry, dict) and "prefix" in entry and entry["prefix"] != prefix:
        return {**entry, "prefix": prefix}
    return entry


def upgrade() -> None:
    bind = op.get_bind()
    # Portable string concatenation (|| on both SQLite and PostgreSQL).
    bind.execute(sa.update(api_keys).values(prefix=sa.literal(f"{KEY_KIND}_") + api_keys.c.id))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(
                admin_actions.c.id, admin_actions.c.target_id,
                admin_actions.c.before, admin_actions.c.after,
            )
            .where(admin_actions.c.target_type == "api_key", admin_actions.c.id > last)
            .order_by(admin_actions.c.id)
            .limit(BATCH)
        ).all()  # fmt: skip
        if not rows:
            break
        for row_id, target_id, before, after in rows:
            prefix = f"{KEY_KIND}_{target_id}"
            new_before, new_after = _scrubbed(before, prefix), _scrubbed(after, prefix)
            if new_before is not before or new_after is not after:
                bind.execute(
                    sa.update(admin_actions)
                    .where(admin_actions.c.id == row_id)
                    .values(before=new_before, after=new_after)
                )
        last = rows[-1][0]


def downgrade() -> None:
    # Nothing to restore: see the module docstring.
    pass
