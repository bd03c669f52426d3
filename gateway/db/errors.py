"""Database errors shared by the migration tools and the start-up check."""

from __future__ import annotations


class SchemaOutOfDate(Exception):
    """The database is not at the migrations' head revision (or could not be migrated)."""
