"""``POST /admin/v1/policy/test`` and ``/policy/impact`` are runs of seconds of
CPU in the serving process: each one is kept in the admin action log (who
ran which candidate, with what outcome), and each token is bounded (one run
of a route at a time, ``GATEWAY_ADMIN_POLICY_RUNS_PER_MINUTE`` runs a minute),
past which it gets 429 ``{"detail": ...}`` with ``retry-after``."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.e2e.test_policy_reports_http import CASES, WITHDRAW_HAIKU, _bundle
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

INVALID = {"files": {"rules.yaml": "rules: [\n"}}
"""A candidate that does not load: the cheapest run there is."""


def _officer(admin: Admin, name: str) -> tuple[dict[str, str], str]:
    made = admin.http.post("/admin/v1/tokens", json={"role": "compliance", "name": name})
    assert made.status_code == 201, made.text
    return {"authorization": f"Bearer {made.json()['token']}"}, str(made.json()["id"])


def _runs(admin: Admin) -> list[dict[str, Any]]:
    page = admin.http.get("/admin/v1/admin-actions", params={"target_type": "policy_run"})
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def test_policy_runs_are_in_the_admin_action_log(gateway: Proc, admin: Admin) -> None:
    """Who ran what against which bundle, and what it found: an officer's dry
    runs of a directive are part of the record of how it was decided."""
    headers, token_id = _officer(admin, "officer-on-call")
    key = admin.customer_with_key(**US_ENTERPRISE)
    sent = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10, json={
        "model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": US_IP})  # fmt: skip
    assert sent.status_code == 200, sent.text
    in_force = admin.http.get("/admin/v1/policy").json()["version"]

    tested = admin.http.post(
        "/admin/v1/policy/test",
        headers=headers,
        timeout=60,
        json={"files": dict(_bundle(), **{"tests/mine.yaml": CASES})},
    )
    assert tested.status_code == 200, tested.text
    replayed = admin.http.post(
        "/admin/v1/policy/impact",
        headers=headers,
        timeout=60,
        json={"files": _bundle(WITHDRAW_HAIKU), "since": "1h"},
    )
    assert replayed.status_code == 200, replayed.text
    judged = admin.http.post(
        "/admin/v1/policy/impact",
        headers=headers,
        timeout=60,
        json={"files": _bundle(WITHDRAW_HAIKU), "customers": True},
    )
    assert judged.status_code == 200, judged.text
    invalid = admin.http.post("/admin/v1/policy/impact", headers=headers, json=INVALID)
    assert invalid.status_code == 200 and invalid.json()["ok"] is False, invalid.text

    runs = _runs(admin)
    assert [r["action"] for r in runs] == ["policy.test"] + ["policy.impact"] * 3, runs
    assert {(r["actor"], r["actor_role"], r["token_id"]) for r in runs} == {
        ("officer-on-call", "compliance", token_id)}, runs  # fmt: skip
    test_run, log_run, customers_run, invalid_run = runs
    candidate = replayed.json()["candidate"]
    assert test_run["target_id"] == tested.json()["version"], test_run
    assert test_run["after"] == {"ok": False, "passed": 1, "failed": 1, "errors": 0,
                                 "in_force": in_force}, test_run  # fmt: skip
    assert log_run["target_id"] == candidate, log_run
    after = log_run["after"]
    assert (after["source"], after["since"], after["total"], after["to_deny"],
            after["to_allow"]) == ("log", "1h", 1, 1, 0), log_run  # fmt: skip
    assert customers_run["target_id"] == candidate, customers_run
    after = customers_run["after"]
    assert (after["source"], after["against"], after["customers"],
            after["cut_customers"]) == ("customers", in_force, 1, 1), customers_run  # fmt: skip
    assert invalid_run["target_id"] == "invalid", invalid_run
    assert invalid_run["after"]["ok"] is False and invalid_run["after"]["errors"] >= 1, invalid_run
    # A dry run changes nothing: the change feed must not read it as a reload.
    assert admin.http.get("/admin/v1/policy").json()["version"] == in_force


def test_runs_per_minute_are_bounded_per_token(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory(env={"GATEWAY_ADMIN_POLICY_RUNS_PER_MINUTE": "3"})
    admin = Admin(gateway.url)
    headers, _ = _officer(admin, "busy-officer")
    for _ in range(3):
        ran = admin.http.post("/admin/v1/policy/test", headers=headers, json=INVALID)
        assert ran.status_code == 200, ran.text
    for path in ("/admin/v1/policy/test", "/admin/v1/policy/impact"):  # one window for both
        refused = admin.http.post(path, headers=headers, json=INVALID)
        assert refused.status_code == 429, (path, refused.text)
        assert "3 policy test/impact runs a minute" in refused.json()["detail"], refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 60, refused.headers
    # Another token is another caller; a refused call ran nothing and is not logged.
    other, _ = _officer(admin, "second-officer")
    assert admin.http.post("/admin/v1/policy/impact", headers=other,
                           json=INVALID).status_code == 200  # fmt: skip
    assert len(_runs(admin)) == 4


def _slow_cases(count: int) -> str:
    case = """  - name: case {n}
    principal: {{tier: enterprise, kyc_level: kyb_verified, citizenships: [US], residence: US}}
    request: {{model: haiku-lite, origin: US}}
    expect: {{decision: allow}}
"""
    return "cases:\n" + "".join(case.format(n=n) for n in range(count))


def test_one_run_at_a_time_per_token(gateway_factory: GatewayFactory) -> None:
    """A second run of a token while its first still runs is refused at once,
    not queued behind it in the worker; another token is not held up by it."""
    gateway = gateway_factory(env={"GATEWAY_ADMIN_POLICY_RUNS_PER_MINUTE": "1000"})
    admin = Admin(gateway.url)
    headers, _ = _officer(admin, "first-officer")
    other, _ = _officer(admin, "second-officer")
    slow = {"files": dict(_bundle(), **{"tests/many.yaml": _slow_cases(3000)})}
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        running = pool.submit(admin.http.post, "/admin/v1/policy/test", headers=headers,
                              json=slow, timeout=120)  # fmt: skip
        seen: list[httpx.Response] = []
        meanwhile: list[int] = []
        while not running.done():
            time.sleep(0.2)
            seen.append(admin.http.post("/admin/v1/policy/test", headers=headers, json=INVALID))
            if not meanwhile:
                meanwhile.append(admin.http.post("/admin/v1/policy/test", headers=other,
                                                 json=INVALID).status_code)  # fmt: skip
        slow_answer = running.result()
        took = time.monotonic() - started
    assert slow_answer.status_code == 200 and slow_answer.json()["passed"] == 3000, took
    busy = [r for r in seen if r.status_code == 429]
    assert busy, (took, [r.status_code for r in seen])
    assert "already running" in busy[0].json()["detail"], busy[0].text
    assert int(busy[0].headers["retry-after"]) >= 1, busy[0].headers
    assert {r.status_code for r in seen} <= {200, 429}, [r.text for r in seen]
    assert meanwhile == [200], meanwhile  # another token is not held up by it
    # The run is over: the slot is free again.
    assert (
        admin.http.post("/admin/v1/policy/test", headers=headers, json=INVALID).status_code == 200
    )
