"""Customer (KYC) tables: the record of SPEC section 4, its ownership rows,
its append-only change history and the KYC-vendor events already applied.

Portable across SQLite and PostgreSQL: JSON columns for lists, timezone-aware
timestamps (SQLite stores them as text; ``gateway.kyc.schemas`` re-attaches UTC
on the way out because SQLite drops the offset).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db.base import Base


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(16))
    citizenships: Mapped[list[str]] = mapped_column(JSON, default=list)
    residence: Mapped[str | None] = mapped_column(String(8), nullable=True)
    incorporated_in: Mapped[str | None] = mapped_column(String(8), nullable=True)
    kyc_level: Mapped[str] = mapped_column(String(64), default="none")
    kyc_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    kyc_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    tier: Mapped[str] = mapped_column(String(64), default="public")
    attributes: Mapped[list[str]] = mapped_column(JSON, default=list)
    sanctions_status: Mapped[str] = mapped_column(String(32), default="clear")
    screening_list_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    screening_best_match: Mapped[str | None] = mapped_column(String(512), nullable=True)
    screening_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    screened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    screening_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    """The match threshold of the last screening (None: screened before it was
    kept); a change of ``GATEWAY_SANCTIONS_THRESHOLD`` re-screens at start-up."""
    screening_hits: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    """Every hit of the last screening, one per (screened name, listed name):
    ``{screened_name, listed_name, score, source, reviewed}`` (``gateway.kyc.reviews``).
    None: not screened since hits were recorded (the best match is all there is)."""
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    """Counts the row's writes: SQLAlchemy's version counter adds one to it in
    every UPDATE of the row through the ORM (and fails one made on a copy read
    before another write). What tells a read-then-write of the row
    (``gateway.kyc.customer_locks``) that it changed since it was read: two
    writes with one clock reading leave ``updated_at`` as it was."""

    __mapper_args__ = {"version_id_col": version}

    ownership: Mapped[list[CustomerOwnership]] = relationship(
        back_populates="customer",
        cascade="all, delete-orphan",
        order_by="CustomerOwnership.id",
        lazy="selectin",
    )


class CustomerOwnership(Base):
    """One direct owner of an organization: its country and share (0-100) and,
    for an owning entity, its name and its own owners (a JSON tree of
    ``{country, percent, name?, ownership?}``, validated by
    ``gateway.kyc.schemas``: bounded in depth and size, read whole with its row)."""

    __tablename__ = "customer_ownership"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    country: Mapped[str] = mapped_column(String(8))
    percent: Mapped[float] = mapped_column(Float)
    name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    owners: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)

    customer: Mapped[Customer] = relationship(back_populates="ownership")


class CustomerHistory(Base):
    """Append-only: one row per change of a customer record, never updated."""

    __tablename__ = "customer_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    """``{field: {"before": ..., "after": ...}}``."""


class ScreeningReview(Base):
    """A compliance user cleared this hit, the listed name ``listed_name``
    found for the customer's screened name ``screened_name``. Never deleted
    nor rewritten: only its withdrawal (``withdrawn_*``) is set, once, when an
    officer sets the customer to a status other than ``clear``; a withdrawn
    review clears nothing (``gateway.kyc.reviews``).

    ``screened_name`` None: cleared before each name's hits were kept (the
    stored best match, migrated), so it covers that listed name whichever name
    matched it, as it did then. ``listed_name`` None: a name of which nothing
    was left to compare (``Screener.screen`` fails closed on it).
    """

    __tablename__ = "screening_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    screened_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    listed_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    cleared_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cleared_by: Mapped[str] = mapped_column(String(256))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    withdrawn_reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    """Why, as the officer gave it (None: no reason was given)."""


class KycWebhookEvent(Base):
    """Vendor event ids already applied, so a replayed event changes nothing."""

    __tablename__ = "kyc_webhook_events"

    event_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
