"""Schema creation for unit tests: ``create_all`` on the shared metadata.

Production creates the schema only through Alembic (``gateway.db.migrate``);
``tests/ops/test_migrations.py`` proves both give the same schema. It imports every
``gateway.<package>.tables`` module that exists (and ``gateway.db.models`` if
present) so the shared metadata knows every table, then creates the missing
ones (existing tables are left as they are).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

from sqlalchemy.ext.asyncio import AsyncEngine

import gateway
from gateway.db.base import Base


def import_table_modules() -> list[str]:
    """Import all table modules so ``Base.metadata`` is complete; returns their names."""
    names = [f"gateway.{m.name}.tables" for m in pkgutil.iter_modules(gateway.__path__) if m.ispkg]
    names.append("gateway.db.models")
    found = [n for n in names if importlib.util.find_spec(n) is not None]
    for name in found:
        importlib.import_module(name)
    return found


async def ensure_schema(engine: AsyncEngine) -> None:
    import_table_modules()
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
