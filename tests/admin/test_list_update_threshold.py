"""The start-up rescreen (``gateway.kyc.list_update``) screens again when the
threshold changed, not only the list: a name screened ``clear`` at 0.92 may be
a potential match at 0.85. Each record keeps the threshold it was screened at."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.kyc.list_update import rescreen_if_list_changed
from gateway.kyc.screening import screener_from_path
from tests.admin.conftest import AdminEnv
from tests.admin.test_screening_reviews import HEADER, URL, ZOLTRAVA

CUSTOMER = "Zolotrava Shippers"  # scores 0.9139 against "Zoltrava Shipping"


async def test_a_lowered_threshold_rescreens_at_start_up(env: AdminEnv, tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text(HEADER + ZOLTRAVA)
    env.services.extras["screener"] = screener_from_path(listed, 0.92)
    r = await env.client.post(URL, json={"id": "zs", "name": CUSTOMER},
                              headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["sanctions_status"] == "clear", r.json()
    assert r.json()["screening"]["threshold"] == 0.92, r.json()

    now = datetime.now(UTC)
    same = screener_from_path(listed, 0.92)
    assert await rescreen_if_list_changed(env.services.sessions, same, now) is None

    lowered = screener_from_path(listed, 0.85)
    outcome = await rescreen_if_list_changed(env.services.sessions, lowered, now)
    assert outcome is not None and [c.id for c in outcome.held] == ["zs"], outcome
    record = (await env.client.get(f"{URL}/zs", headers=env.auth("admin"))).json()
    assert record["sanctions_status"] == "potential_match", record
    assert record["screening"]["threshold"] == 0.85, record
    # Started again at 0.85: screened at it already.
    assert await rescreen_if_list_changed(env.services.sessions, lowered, now) is None
