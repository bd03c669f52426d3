"""A KYC webhook event and ``gateway customers withdraw-clearance`` committed
while a rescreen batch is in flight (after it read its customers, before it
wrote): what they wrote stands, and the batch screens the customer as it is
then (SQLite; ``tests/ops/test_customer_locks_postgres.py`` runs the same
on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kyc.rescreen_race import CUSTOMER, kyc_event_during_batch
from tests.kyc.withdrawal_race import migrated, withdrawal_during_batch
from tests.support.identity_app import make_db, make_settings


async def test_a_kyc_event_applied_during_a_batch_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, sessions = await make_db(make_settings(tmp_path))
    try:
        outcome, status, level = await kyc_event_during_batch(sessions, tmp_path, monkeypatch)
    finally:
        await engine.dispose()
    assert level == "verified"
    assert status == "potential_match" and [c.id for c in outcome.held] == [CUSTOMER]


async def test_a_withdrawal_during_a_batch_leaves_the_hit_unreviewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    engine, sessions = await migrated(tmp_path, url)
    try:
        outcome, (status, reviewed) = await withdrawal_during_batch(
            sessions, url, tmp_path, monkeypatch
        )
    finally:
        await engine.dispose()
    # Held by the withdrawal, not by the batch; the review it read is withdrawn.
    assert status == "potential_match" and reviewed == [False, False]
    assert outcome.screened == 1 and outcome.held == []
