"""Every table of the gateway, imported so that ``metadata`` is complete
(Alembic autogenerate and the schema check compare against it)."""

from __future__ import annotations

from gateway.audit import tables as audit_tables
from gateway.db.base import Base
from gateway.identity import tables as identity_tables
from gateway.kyc import tables as kyc_tables

metadata = Base.metadata

__all__ = ["audit_tables", "identity_tables", "kyc_tables", "metadata"]
