"""A rescreen batch does not write its verdict over a compliance decision
made after it read the customer and before it wrote (SQLite: the batch takes
the write lock, re-reads what changed and screens that again)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kyc.rescreen_race import (
    clearance_during_batch,
    confirmation_during_batch,
    rename_at_one_clock_reading,
)
from tests.support.identity_app import make_db, make_settings


async def test_a_clearance_made_during_a_batch_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, sessions = await make_db(make_settings(tmp_path))
    outcome, (status, reviewed) = await clearance_during_batch(sessions, tmp_path, monkeypatch)
    await engine.dispose()
    assert status == "clear" and reviewed == [True]
    assert outcome.screened == 1 and outcome.held == []


async def test_a_confirmed_match_made_during_a_batch_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, sessions = await make_db(make_settings(tmp_path))
    outcome, (status, reviewed) = await confirmation_during_batch(
        sessions, tmp_path, monkeypatch
    )
    await engine.dispose()
    assert status == "confirmed_match" and reviewed == [False]
    assert outcome.screened == 1 and outcome.held == []


async def test_a_rename_at_the_same_clock_reading_is_screened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch compared timestamps and status to tell a changed row: a
    rename written at the clock reading of the row's last write left them
    all as they were, and the batch stored the old name's verdict (clear)
    as the updated list's for a name that list names; the rescreen at
    start-up then skipped it for good. The row's version counter moves."""
    engine, sessions = await make_db(make_settings(tmp_path))
    outcome, status = await rename_at_one_clock_reading(sessions, tmp_path, monkeypatch)
    await engine.dispose()
    assert status == "potential_match"
    assert [c.id for c in outcome.held] == ["cus_zoltrava"]
