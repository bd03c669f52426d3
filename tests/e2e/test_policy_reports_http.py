"""``gateway policy test``, ``policy impact`` and ``audit policies`` over the
admin API: an officer with no shell on the gateway host runs a candidate's
tests, sees whom it would refuse, and reads which bundle was in force when.

A real gateway decides a request; the routes answer with the content of the
CLI's reports (the same pure functions produce both)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e

WITHDRAW_HAIKU = """
  - id: withdraw-haiku
    effect: deny
    when: {model_in: [haiku-lite]}
    reason: haiku-lite is withdrawn.
"""

CASES = """cases:
  - name: an enterprise keeps haiku-lite
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [US], residence: US}
    request: {model: haiku-lite, origin: US}
    expect: {decision: allow}
  - name: a wrong expectation
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [US], residence: US}
    request: {model: haiku-lite, origin: US}
    expect: {decision: deny}
"""


def _bundle(extra_rule: str = "") -> dict[str, str]:
    files = {p.name: p.read_text() for p in (REPO / "policies").glob("*.yaml")}
    files["rules.yaml"] += extra_rule
    return files


def _token(admin: Admin, role: str) -> dict[str, str]:
    made = admin.http.post("/admin/v1/tokens", json={"role": role, "name": f"{role}-t"})
    assert made.status_code == 201, made.text
    return {"authorization": f"Bearer {made.json()['token']}"}


def test_policy_test_route_runs_a_candidates_cases(gateway: Proc, admin: Admin) -> None:
    files = dict(_bundle(), **{"tests/mine.yaml": CASES})
    answer = admin.http.post("/admin/v1/policy/test", json={"files": files}, timeout=60)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert (doc["ok"], doc["passed"], doc["failed"]) == (False, 1, 1), doc
    failed = [r for r in doc["results"] if not r["passed"]]
    assert [(r["file"], r["name"]) for r in failed] == [("tests/mine.yaml", "a wrong expectation")]
    assert failed[0]["detail"].startswith("expected deny, got allow"), failed
    # Coverage as the CLI prints it: rules no case saw match, with file:line.
    uncovered = {r["id"]: r["location"] for r in doc["uncovered_rules"]}
    assert uncovered["sanctioned-origin"] == "rules.yaml:3", uncovered
    assert doc["version"] and len(doc["version"]) == 64
    invalid = admin.http.post("/admin/v1/policy/test", json={"files": {"rules.yaml": "rules: [\n"}})
    assert invalid.status_code == 200, invalid.text
    assert invalid.json()["ok"] is False
    assert invalid.json()["errors"][0].startswith("rules.yaml:2: YAML syntax error")


def test_policy_impact_route_replays_the_log_against_a_candidate(
    gateway: Proc, admin: Admin
) -> None:
    key = admin.customer_with_key(**US_ENTERPRISE)
    sent = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10, json={
        "model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": US_IP})  # fmt: skip
    assert sent.status_code == 200, sent.text
    answer = admin.http.post("/admin/v1/policy/impact", timeout=60,
                             json={"files": _bundle(WITHDRAW_HAIKU), "since": "1h"})
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert (doc["total"], doc["to_deny"], doc["to_allow"]) == (1, 1, 0), doc
    assert doc["by_rule"] == {"withdraw-haiku": 1}, doc
    assert doc["by_model"] == {"haiku-lite": 1}, doc
    assert len(doc["refused_customers"]["top"]) == 1, doc
    assert doc["in_force"] == admin.http.get("/admin/v1/policy").json()["version"]
    bad = admin.http.post("/admin/v1/policy/impact", json={"files": _bundle(), "since": "7x"})
    assert bad.status_code == 422, bad.text


def test_audit_policies_route_lists_the_bundle_loads(gateway: Proc, admin: Admin) -> None:
    version = admin.http.get("/admin/v1/policy").json()["version"]
    answer = admin.http.get("/admin/v1/audit/policies", params={"since": "1h"})
    assert answer.status_code == 200, answer.text
    events = answer.json()["events"]
    loads = [e for e in events if e["kind"] == "policy_reload"]
    assert loads and loads[-1]["new_version"] == version, events
    assert loads[0]["old_version"] is None and loads[0]["ts"].endswith("Z"), events


def test_the_routes_keep_the_roles_of_their_neighbours(gateway: Proc, admin: Admin) -> None:
    auditor, compliance = _token(admin, "auditor"), _token(admin, "compliance")
    files = {"json": {"files": _bundle()}}
    for path in ("/admin/v1/policy/test", "/admin/v1/policy/impact"):
        assert admin.http.post(path, headers=auditor, **files).status_code == 403
        assert admin.http.post(path, headers=compliance, timeout=60, **files).status_code == 200
    assert admin.http.get("/admin/v1/audit/policies", headers=compliance).status_code == 403
    assert admin.http.get("/admin/v1/audit/policies", headers=auditor).status_code == 200


LICENCE = """
  - id: licence-haiku
    effect: exempt
    exempts: [withdraw-haiku]
    when: {customer_in: [no-such-customer]}
"""


def test_policy_impact_route_judges_every_customer_record(gateway: Proc, admin: Admin) -> None:
    """``"customers": true`` is ``policy impact --customers`` against the bundle in
    force: customers who never called in the window are counted too."""
    created = admin.customer(**US_ENTERPRISE)
    answer = admin.http.post("/admin/v1/policy/impact", timeout=60, json={
        "files": _bundle(WITHDRAW_HAIKU + LICENCE), "customers": True})  # fmt: skip
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["ok"] and doc["customers"] == 1 and doc["cut_customers"] == 1, doc
    assert doc["against"] == admin.http.get("/admin/v1/policy").json()["version"], doc
    cut = [(c["customer_id"], c["model"], c["capability"], c["rule_ids"]) for c in doc["cut"]]
    assert cut == [(created["id"], "haiku-lite", None, ["withdraw-haiku"])], doc
    assert doc["by_rule"] == {"withdraw-haiku": 1}, doc
    assert doc["unknown_customer_ids"] == [
        {"rule_id": "licence-haiku", "customer_id": "no-such-customer"}
    ], doc


def test_concurrent_impact_replays_leave_the_worker_answering(gateway: Proc, admin: Admin) -> None:
    """More replays at once than the worker's default thread pool has threads
    (six on two CPUs): each replay's consumer waited for batches in that pool,
    the puts that would bring them queued behind, and the pool was deadlocked
    for good: those replays never answered, nor anything else that needs the
    pool (policy validate here; reloads, the upstream's DNS lookups).
    One token per replay: a token runs one replay at a time (429 for a second,
    ``test_policy_runs_http.py``), so the pile-up takes twelve officers."""
    files = _bundle(WITHDRAW_HAIKU)
    officers = [_token(admin, "compliance") for _ in range(12)]

    def replay(index: int) -> int:
        with httpx.Client(base_url=gateway.url, headers=officers[index]) as client:
            return client.post("/admin/v1/policy/impact", timeout=45,
                               json={"files": files, "since": "1h"}).status_code  # fmt: skip

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(replay, range(12)))
    assert statuses == [200] * 12, statuses
    checked = admin.http.post("/admin/v1/policy/validate", json={"files": files}, timeout=30)
    assert checked.status_code == 200, checked.text


def test_a_window_longer_than_the_calendar_reads_the_whole_log(gateway: Proc, admin: Admin) -> None:
    """``since`` is digits and a unit, unbounded: past the calendar (before year 1,
    or past timedelta's own range) it raised OverflowError, a 500 on both routes.
    Any such window means the whole log, as a merely long one already did."""
    whole = admin.http.get("/admin/v1/audit/policies", params={"since": "5000w"})
    assert whole.status_code == 200, whole.text
    for since in ("200000w", "9999999999999w"):
        longer = admin.http.get("/admin/v1/audit/policies", params={"since": since})
        assert longer.status_code == 200, (since, longer.text)
        assert longer.json()["events"] == whole.json()["events"]
        impact = admin.http.post("/admin/v1/policy/impact", timeout=60,
                                 json={"files": _bundle(), "since": since})  # fmt: skip
        assert impact.status_code == 200, (since, impact.text)
