"""Audit tables: the hash-chained record log, its signed checkpoints, the
per-node chain heads, public keys, legal holds and the rule-id side index.

One table holds every record kind (decision, outcome, policy_reload,
quota_store) because the chain runs over all of them in ``(node_id, seq)``
order. ``body`` is the exact canonical JSON that was hashed; the other columns
are query indexes derived from it, and ``gateway audit verify`` checks that
they still agree with the body.

Index choice (for a filtered page at 10M rows): every list filter has a
composite ``(column, id)`` index so that ``WHERE col = ? AND id > cursor
ORDER BY id LIMIT n`` is one index range scan; ``from``/``to`` use the ``ts``
index (ids are time-ordered too, but ``ts`` comes from the pipeline's clock,
which tests may fake, so id bounds would not be exact). Rule-id filters go
through ``audit_decision_rules`` whose primary key is ``(rule_id, decision_id)``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Table, Text, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from gateway.audit.record import KIND_LEN
from gateway.db.base import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_AutoId = BigInteger().with_variant(Integer(), "sqlite")


def _partial(name: str, *columns: str, where: str) -> Index:
    # Only ``sqlite_where`` is named here: naming ``postgresql_where`` makes
    # SQLAlchemy import its PostgreSQL dialect (~2.2 MB resident) into every
    # worker, SQLite ones included. The same clause is given to PostgreSQL when
    # the schema is created there (tests' create_all; production runs the
    # Alembic migrations, which spell it out).
    return Index(name, *columns, sqlite_where=text(where))


def _decisions_only(name: str, *columns: str) -> Index:
    return _partial(name, *columns, where="kind = 'decision'")


class AuditRecordRow(Base):
    __tablename__ = "audit_records"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(KIND_LEN))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    customer_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """Customer ids are up to 128 characters (``kyc.schemas.ID_PATTERN``)."""
    decision: Mapped[str | None] = mapped_column(String(8), nullable=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    origin_country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    origin_region: Mapped[str | None] = mapped_column(String(8), nullable=True)
    decision_id: Mapped[str | None] = mapped_column(String(26), nullable=True)
    """For outcome records: the decision they follow."""
    body: Mapped[str] = mapped_column(Text)
    """Canonical JSON (sorted keys, orjson) of the record; what ``hash`` covers."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ux_audit_records_node_seq", "node_id", "seq", unique=True),
        # The list filters only ever select decisions: partial indexes keep
        # outcome rows (one per forwarded request) out of four b-trees, which
        # is about a third of the index writes on the hot path.
        _decisions_only("ix_audit_records_customer_id_id", "customer_id", "id"),
        _decisions_only("ix_audit_records_verdict_id", "decision", "id"),
        _decisions_only("ix_audit_records_model_id", "model", "id"),
        _decisions_only("ix_audit_records_origin_country_id", "origin_country", "id"),
        # Covering index for export ranges: (ts) -> (node_id, seq) without row lookups.
        Index("ix_audit_records_ts_node_seq", "ts", "node_id", "seq"),
        _partial("ix_audit_records_outcome_of", "decision_id", where="decision_id IS NOT NULL"),
        # The policy texts (audit/policy_texts.py): one row per start or reload,
        # found without scanning the log; decisions and outcomes never enter it.
        _partial("ix_audit_records_policy_reload", "id", where="kind = 'policy_reload'"),
    )


class AuditDecisionRuleRow(Base):
    """Side index: which rule ids a decision names (not hashed; derived from body)."""

    __tablename__ = "audit_decision_rules"

    rule_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(26), primary_key=True)


class AuditNodeRow(Base):
    """One row per chain: its committed head, and which writer owns it.

    The head is updated in the same transaction as every batch with a
    compare-and-set on ``(owner, last_seq)``: two writers can never extend the
    same chain, and a deleted tail that leaves this row alone is detectable.
    """

    __tablename__ = "audit_nodes"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(256), nullable=True)
    """``host:pid:token`` of the writer holding the lease, None when released."""
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditCheckpointRow(Base):
    """A signed statement "chain ``node_id`` had head ``head_hash`` at ``seq``".

    ``kind`` is ``checkpoint`` or ``tombstone`` (records up to ``seq`` were
    pruned by retention; ``count`` says how many). ``payload`` is the exact
    canonical JSON that was signed; the other columns mirror it.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(_AutoId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(KIND_LEN))
    node_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))
    """Base64 Ed25519 signature over ``payload``."""

    __table_args__ = (Index("ix_audit_checkpoints_node_seq", "node_id", "seq"),)


class AuditKeyRow(Base):
    """Public keys that signed checkpoints, by fingerprint (SHA-256 of the raw key)."""

    __tablename__ = "audit_keys"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    """Base64 of the 32 raw Ed25519 public key bytes."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditLegalHoldRow(Base):
    """A legal hold: records it covers must not be pruned until it is released."""

    __tablename__ = "audit_legal_holds"

    id: Mapped[int] = mapped_column(_AutoId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """None: every customer's records in the time range."""
    from_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    until_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditOwnershipSnapshotRow(Base):
    """An ownership tree that decision records name by digest, stored once
    (``audit/ownership_snapshots.py``). Not chained: the digest is, in every
    record that names it, and ``verify`` re-hashes ``body`` against it. Never
    pruned (records of any age may name it; one row per distinct tree)."""

    __tablename__ = "audit_ownership_snapshots"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    """The canonical JSON of the tree, whose SHA-256 is ``sha256``."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


audit_records = cast(Table, AuditRecordRow.__table__)
audit_ownership_snapshots = cast(Table, AuditOwnershipSnapshotRow.__table__)
audit_decision_rules = cast(Table, AuditDecisionRuleRow.__table__)
audit_nodes = cast(Table, AuditNodeRow.__table__)
audit_checkpoints = cast(Table, AuditCheckpointRow.__table__)
audit_keys = cast(Table, AuditKeyRow.__table__)
audit_legal_holds = cast(Table, AuditLegalHoldRow.__table__)


@event.listens_for(audit_records, "before_create")
def _postgresql_partial_indexes(target: Table, connection: Connection, **_: Any) -> None:
    """Give the partial indexes their SQLite predicate on PostgreSQL too (see ``_partial``)."""
    if connection.dialect.name != "postgresql":
        return
    for index in target.indexes:
        where = index.dialect_kwargs.get("sqlite_where")
        if where is not None:
            index.dialect_kwargs["postgresql_where"] = where
