"""Setting a customer's sanctions status to anything but ``clear`` withdraws
every clearance of its screening hits: the officer says the customer is not
clear, so no earlier review may keep saying any of its hits is harmless.
The withdrawal is audited (who, when, why) in the admin-action log and the
customer's history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.admin.conftest import AdminEnv
from tests.admin.test_screening_reviews import (
    BRENHOLT,
    URL,
    ZOLTRAVA,
    _clear,
    _get,
    _held_org,
    _list,
    _owner,
    _rescreen,
)

OWNERS = [_owner("Zoltrava Shipping Ltd", 60), _owner("Brenholt Ventures Ltd", 40)]
WHY = "adverse media: the owner is the listed vessel operator after all"


async def test_a_non_clear_status_withdraws_every_review(env: AdminEnv, tmp_path: Path) -> None:
    """Cleared as false positives, then found to be a real match: a rescreen
    (or a later change re-screening the names) read the old reviews and marked
    the hits harmless, and a later "clear" was not a review of them at all."""
    env.services.extras["screener"] = _list(tmp_path, "v1.csv", ZOLTRAVA, BRENHOLT)
    await _held_org(env, OWNERS)
    await _clear(env, "org")
    body = {"sanctions_status": "confirmed_match", "reason": WHY}
    r = await env.client.patch(f"{URL}/org", json=body,
                               headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 200, r.text
    assert [h["reviewed"] for h in r.json()["screening"]["hits"]] == [False, False], r.json()
    # A rescreen does not read the withdrawn reviews either.
    assert await _rescreen(env, _list(tmp_path, "v1b.csv", ZOLTRAVA, BRENHOLT)) == []
    record = await _get(env, "org")
    assert [h["reviewed"] for h in record["screening"]["hits"]] == [False, False], record
    assert record["sanctions_status"] == "confirmed_match"
    # Cleared again, it is a new review of both hits.
    assert all(h["reviewed"] for h in (await _clear(env, "org"))["screening"]["hits"])


async def test_a_withdrawal_is_audited_with_who_when_and_why(
    env: AdminEnv, tmp_path: Path
) -> None:
    env.services.extras["screener"] = _list(tmp_path, "v1.csv", ZOLTRAVA)
    await _held_org(env, OWNERS[:1])
    await _clear(env, "org")
    env.clock.now += timedelta(hours=1)
    body = {"sanctions_status": "potential_match", "reason": WHY}
    r = await env.client.patch(f"{URL}/org", json=body, headers=env.auth("compliance"))
    assert r.status_code == 200, r.text
    page = await env.client.get("/admin/v1/admin-actions", headers=env.auth("auditor"),
                                params={"action": "customer.screening_withdraw"})  # fmt: skip
    items = page.json()["items"]
    assert len(items) == 1, items
    action = items[0]
    assert (action["actor"], action["target_id"], action["at"]) == (
        "test-compliance", "org", "2026-03-01T13:00:00Z")  # fmt: skip
    assert action["after"]["reason"] == WHY
    assert action["after"]["withdrawn"] == [{
        "screened_name": "Zoltrava Shipping Ltd", "listed_name": "Zoltrava Shipping",
        "score": 1.0, "cleared_by": "test-compliance", "cleared_at": "2026-03-01T12:00:00Z",
    }]  # fmt: skip
    history = await env.client.get(f"{URL}/org/history", headers=env.auth("compliance"))
    actions = [i["action"] for i in history.json()["items"]]
    assert actions[-2:] == ["customer.update", "customer.screening_withdraw"], actions
    # Nothing left to withdraw: no second withdrawal row.
    body = {"sanctions_status": "confirmed_match", "reason": WHY}
    r = await env.client.patch(f"{URL}/org", json=body,
                               headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 200, r.text
    page = await env.client.get("/admin/v1/admin-actions", headers=env.auth("auditor"),
                                params={"action": "customer.screening_withdraw"})  # fmt: skip
    assert len(page.json()["items"]) == 1


async def test_a_reason_is_only_taken_with_a_sanctions_status(env: AdminEnv) -> None:
    r = await env.client.post(URL, json={"id": "c1", "name": "Jane Smith"},
                              headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 201, r.text
    r = await env.client.patch(f"{URL}/c1", json={"reason": WHY}, headers=env.auth("compliance"))
    assert r.status_code == 422 and "reason" in r.text, r.text



async def test_a_withdrawal_through_the_api_without_a_reason_is_still_taken(
    env: AdminEnv, tmp_path: Path
) -> None:
    """SPEC section 4's PATCH takes the record's fields alone: a client setting
    a status without a reason is served, and the withdrawal row says none was
    given (the CLI's withdraw-clearance requires --reason)."""
    env.services.extras["screener"] = _list(tmp_path, "v1.csv", ZOLTRAVA)
    await _held_org(env, OWNERS[:1])
    await _clear(env, "org")
    r = await env.client.patch(f"{URL}/org", json={"sanctions_status": "confirmed_match"},
                               headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 200, r.text
    assert (await _get(env, "org"))["sanctions_status"] == "confirmed_match"
