"""Credential tables: gateway API keys, admin-API tokens, and the admin action log.

Secrets are never stored: only a per-row random salt and SHA-256(salt || secret)
(see ``gateway.identity.secrets`` for why a fast hash is sound here).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    secret_salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(64))
    """Displayable start of the key, ``gk_<id>``: the part that was never secret.
    (Before migration a9d1769e1ee6 it also held four characters of the secret.)"""
    name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # none_as_null: an unscoped key is SQL NULL, not the JSON text 'null'.
    allowed_models: Mapped[list[str] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    """The models this key may use, within what the customer's tier allows; None: all of those."""
    allowed_capabilities: Mapped[list[str] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    """The capabilities a request on this key may have; None: any the tier allows."""


class AdminToken(Base):
    __tablename__ = "admin_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    secret_salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AdminAction(Base):
    """Append-only log of every admin write: who did what, before and after."""

    __tablename__ = "admin_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(256))
    actor_role: Mapped[str] = mapped_column(String(32))
    token_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(128), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class StoredResponseOwner(Base):
    """Which customer a response stored upstream was relayed to
    (``gateway.proxy.stored_state``: the upstream sees one account for all)."""

    __tablename__ = "stored_response_owners"

    response_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The model it was created with: calls on it by id are decided for that model."""
    unsettled_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Tokens charged for it when its create answered without usage (background
    mode: ``queued``); cleared by the first retrieval showing its usage, which
    charges what it used beyond them (docs/quotas.md)."""
    capabilities: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    """The capabilities its create was decided with: calls on it by id are
    decided with them (null: bound before they were recorded, the model's own)."""
    context_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Its usage (input and output tokens), which a request continuing it has the
    upstream read again: reserved by that request (null: never seen)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MessageBatchOwner(Base):
    """Which customer a Message Batch created through the gateway belongs to
    (``gateway.proxy.batch_state``: the upstream sees one account for all)."""

    __tablename__ = "message_batch_owners"

    batch_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    models: Mapped[list[str]] = mapped_column(JSON)
    """The models its requests named: calls on it are decided for each of them."""
    decision_id: Mapped[str] = mapped_column(String(64))
    """The create's decision record (its inner requests' records name it too)."""
    capabilities: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    """The union of its requests' capabilities: calls on it by id are decided
    with them (null: bound before they were recorded, the models' own)."""
    unsettled: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    """What its create reserved, per quota group, and what results downloads
    have charged beyond it so far (``gateway.proxy.batch_charge``); SQL NULL
    (not a JSON ``null``) for a batch with none kept."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RelayedObjectOwner(Base):
    """Which customer an upstream object named by id in an answer was relayed to:
    a stored item (``msg_…``, ``fc_…``), a code-execution container, a file it
    wrote or a chat answer's audio
    (``gateway.proxy.reference_owners``: the upstream sees one account for all)."""

    __tablename__ = "relayed_object_owners"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    """``item``, ``container``, ``file`` or ``audio`` (``gateway.proxy.references``)."""
    object_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
