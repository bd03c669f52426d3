"""An officer's PATCH does not write what it read over a rescreen batch
committed between its read and its write (SQLite: the PATCH takes the write
lock before it reads the customer): a clearance clears the hits it was
shown, and a hit the batch found meanwhile still holds the customer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kyc.rescreen_race import batch_during_clearance
from tests.support.identity_app import make_db, make_settings


async def test_a_hit_found_during_a_clearance_holds_the_customer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, sessions = await make_db(make_settings(tmp_path))
    status, reviewed = await batch_during_clearance(sessions, tmp_path, monkeypatch)
    await engine.dispose()
    assert reviewed == {"Zoltrava Shipping": True, "Brenholt Ventures": False}
    assert status == "potential_match"
