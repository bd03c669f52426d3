"""A compliance review clears each (screened name, listed name) hit it saw:
a hit on another name, or on another listed entry, still holds the customer,
and a change that brings a clean name does not undo the review."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.admin.auth import AdminActor
from gateway.kyc.rescreen import rescreen_customers
from gateway.kyc.screening import Screener, screener_from_path
from tests.admin.conftest import AdminEnv

URL = "/admin/v1/customers"
ACTOR = AdminActor(name="list-update", role="admin", token_id=None)
HEADER = "name,alt_names,type,source\n"
ZOLTRAVA = "Zoltrava Shipping,,Entity,SYN-EL\n"
BRENHOLT = "Brenholt Ventures,,Entity,SYN-EL\n"


def _list(tmp_path: Path, name: str, *rows: str) -> Screener:
    path = tmp_path / name
    path.write_text(HEADER + "".join(rows))
    return screener_from_path(path, 0.9)


def _owner(name: str, percent: float) -> dict[str, Any]:
    return {"country": "SG", "percent": percent, "name": name}


async def _rescreen(env: AdminEnv, screener: Screener) -> list[str]:
    env.services.extras["screener"] = screener
    async with env.services.sessions() as session:
        outcome = await rescreen_customers(session, screener, ACTOR, datetime.now(UTC))
        await session.commit()
    return [c.id for c in outcome.held]


async def _get(env: AdminEnv, cid: str) -> dict[str, Any]:
    r = await env.client.get(f"{URL}/{cid}", headers=env.auth("admin"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _clear(env: AdminEnv, cid: str) -> dict[str, Any]:
    r = await env.client.patch(f"{URL}/{cid}", json={"sanctions_status": "clear"},
                               headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 200 and r.json()["sanctions_status"] == "clear", r.text
    body: dict[str, Any] = r.json()
    return body


async def _held_org(env: AdminEnv, owners: list[dict[str, Any]]) -> None:
    body = {"id": "org", "name": "Merlion Trading Pte", "kind": "organization",
            "ownership": owners}  # fmt: skip
    r = await env.client.post(URL, json=body, headers=env.auth("compliance"))
    assert r.status_code == 201, r.text
    assert r.json()["sanctions_status"] == "potential_match", r.json()


async def test_a_new_weaker_hit_does_not_hide_behind_a_cleared_one(
    env: AdminEnv, tmp_path: Path
) -> None:
    """Owner A's hit was cleared; a list update makes owner B's name a weaker
    hit. Only the strongest result was kept, which the review covered: the
    customer was never held for B."""
    env.services.extras["screener"] = _list(tmp_path, "v1.csv", ZOLTRAVA)
    await _held_org(env, [_owner("Zoltrava Shipping Ltd", 60), _owner("Brenholt Venturas Ltd", 40)])
    await _clear(env, "org")
    assert await _rescreen(env, _list(tmp_path, "v1b.csv", ZOLTRAVA)) == []
    held = await _rescreen(env, _list(tmp_path, "v2.csv", ZOLTRAVA, BRENHOLT))
    record = await _get(env, "org")
    assert held == ["org"] and record["sanctions_status"] == "potential_match", record
    # The screening block names each hit, and whether a review covers it.
    hits = {(h["screened_name"], h["listed_name"]): h for h in record["screening"]["hits"]}
    assert set(hits) == {("Zoltrava Shipping Ltd", "Zoltrava Shipping"),
                         ("Brenholt Venturas Ltd", "Brenholt Ventures")}  # fmt: skip
    assert hits["Zoltrava Shipping Ltd", "Zoltrava Shipping"]["reviewed"] is True
    assert hits["Brenholt Venturas Ltd", "Brenholt Ventures"]["reviewed"] is False
    assert record["screening"]["best_match"] == "Zoltrava Shipping"  # still the strongest
    # Cleared in turn, neither is raised again.
    await _clear(env, "org")
    assert await _rescreen(env, _list(tmp_path, "v3.csv", BRENHOLT, ZOLTRAVA)) == []
    assert all(h["reviewed"] for h in (await _get(env, "org"))["screening"]["hits"])


async def test_a_change_bringing_a_clean_name_keeps_the_review(
    env: AdminEnv, tmp_path: Path
) -> None:
    """Adding an owner re-screens every name: a hit the review already cleared
    must not hold the customer again; a new hit still does."""
    env.services.extras["screener"] = _list(tmp_path, "v1.csv", ZOLTRAVA, BRENHOLT)
    zoltrava = _owner("Zoltrava Shipping Ltd", 60)
    await _held_org(env, [zoltrava])
    await _clear(env, "org")
    r = await env.client.patch(f"{URL}/org", json={"ownership": [zoltrava,
                               _owner("Harbor Tools Ltd", 40)]},
                               headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 200 and r.json()["sanctions_status"] == "clear", r.json()
    r = await env.client.patch(f"{URL}/org", json={"ownership": [zoltrava,
                               _owner("Brenholt Ventures Pte", 40)]},
                               headers=env.auth("compliance"))  # fmt: skip
    assert r.json()["sanctions_status"] == "potential_match", r.json()


async def test_a_second_listed_name_for_a_cleared_name_is_a_hit_of_its_own(
    env: AdminEnv, tmp_path: Path
) -> None:
    """One screened name, two listed names: the review cleared the closest
    one; a list update adding another (a weaker match) is a new lead."""
    env.services.extras["screener"] = _list(tmp_path, "v1.csv", BRENHOLT)
    await _held_org(env, [_owner("Brenholt Ventures Ltd", 60)])
    await _clear(env, "org")
    second = "Brenholt Venturas,,Entity,SYN-SDN\n"
    assert await _rescreen(env, _list(tmp_path, "v2.csv", BRENHOLT, second)) == ["org"]
    hits = (await _get(env, "org"))["screening"]["hits"]
    assert [(h["listed_name"], h["reviewed"]) for h in hits] == [
        ("Brenholt Ventures", True), ("Brenholt Venturas", False)
    ], hits  # fmt: skip


async def test_a_cleared_name_with_nothing_to_compare_is_not_raised_again(
    env: AdminEnv, tmp_path: Path
) -> None:
    """Nothing of "--" is left to compare: held for a person (fail closed).
    Once a review cleared it, each rescreen held it again (the review was
    read off a listed name, and there is none)."""
    r = await env.client.post(URL, json={"id": "dash", "name": "--"},
                              headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 201 and r.json()["sanctions_status"] == "potential_match", r.text
    hits = (await _clear(env, "dash"))["screening"]["hits"]
    assert hits == [{"screened_name": "--", "listed_name": None, "score": 0.0, "source": None,
                     "reviewed": True}]  # fmt: skip
    assert await _rescreen(env, _list(tmp_path, "v1.csv", ZOLTRAVA)) == []


async def test_clearing_in_the_same_patch_that_brings_a_new_hit_does_not_clear_it(
    env: AdminEnv, tmp_path: Path
) -> None:
    """A review clears what the reviewer was shown. A PATCH that adds a listed
    owner and sets ``clear`` in one go cleared the new owner's hit unseen: it
    stays held, with the new hit unreviewed and the hits shown before cleared."""
    env.services.extras["screener"] = _list(tmp_path, "v1.csv", ZOLTRAVA, BRENHOLT)
    zoltrava = _owner("Zoltrava Shipping Ltd", 60)
    await _held_org(env, [zoltrava])
    body = {"sanctions_status": "clear",
            "ownership": [zoltrava, _owner("Brenholt Ventures Pte", 40)]}  # fmt: skip
    r = await env.client.patch(f"{URL}/org", json=body, headers=env.auth("compliance"))
    assert r.status_code == 200, r.text
    record = r.json()
    reviewed = {h["screened_name"]: h["reviewed"] for h in record["screening"]["hits"]}
    assert reviewed == {"Zoltrava Shipping Ltd": True, "Brenholt Ventures Pte": False}, record
    assert record["sanctions_status"] == "potential_match", record
    # Shown now, it is cleared by the next review.
    assert (await _clear(env, "org"))["sanctions_status"] == "clear"
