"""The start-up rescreen (``gateway.kyc.list_update``) screens again when the
threshold changed, not only the list: a name screened ``clear`` at 0.92 may be
a potential match at 0.85. Each record keeps the threshold it was screened at."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.identity.screening_summary import ListInForce, awaiting_rescreen
from gateway.kyc.list_update import rescreen_if_list_changed
from gateway.kyc.screening import screener_from_path
from gateway.kyc.tables import Customer
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


async def test_the_same_list_downloaded_again_is_not_a_new_list(
    env: AdminEnv, tmp_path: Path
) -> None:
    """The list version is ``<content digest>-<file date>``: the same content
    fetched again another day (a daily download) changed only the date, and
    every customer was screened again at each restart (and held, served as
    public, until reached) for a list that named nobody new."""
    listed = tmp_path / "list.csv"
    listed.write_text(HEADER + ZOLTRAVA)
    first = screener_from_path(listed, 0.9)
    env.services.extras["screener"] = first
    r = await env.client.post(URL, json={"id": "c1", "name": "Jane Smith"},
                              headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 201, r.text
    tomorrow = listed.stat().st_mtime + 86400
    os.utime(listed, (tomorrow, tomorrow))
    again = screener_from_path(listed, 0.9)
    assert again.version != first.version  # the date part
    assert await rescreen_if_list_changed(env.services.sessions, again, datetime.now(UTC)) is None
    in_force = ListInForce(again.version, 0.9, datetime.now(UTC) + timedelta(minutes=1))
    async with env.services.sessions() as session:
        customer = await session.get(Customer, "c1")
        assert customer is not None and not awaiting_rescreen(customer, in_force)
