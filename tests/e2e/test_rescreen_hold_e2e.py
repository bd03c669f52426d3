"""Through the real gateway: a customer whose ``clear`` is not a verdict of the
list in force (here: added by `gateway customers add` with no list set, so
never screened) is served as ``public`` and its decision record says why,
until `gateway customers rescreen --new-only` screens it; then it is served at
its tier again (within the identify cache's TTL: a rescreen that holds nobody
writes nothing to the change feed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.e2e.test_cli_e2e import chat, within
from tests.support.processes import REPO, Admin

pytestmark = pytest.mark.e2e
DATA = REPO / "tests" / "data"


def _cli(tmp_path: Path, *args: str, listed: Path | None) -> str:
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
           "PATH": "/usr/bin:/bin", "COLUMNS": "200"}  # fmt: skip
    if listed is not None:
        env["GATEWAY_SANCTIONS_LIST"] = str(listed)
    done = subprocess.run([sys.executable, "-m", "gateway.cli.main", "customers", *args],
                          env=env, cwd=tmp_path, capture_output=True, text=True, check=False,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_a_customer_never_screened_against_the_list_is_held_until_it_is(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    listed = DATA / "sanctions_sample.csv"
    gateway = gateway_factory(env={"GATEWAY_SANCTIONS_LIST": str(listed),
                                   "GATEWAY_CACHE_TTL_SECONDS": "1"})  # fmt: skip
    admin = Admin(gateway.url)
    _cli(tmp_path, "add", "Acme Robotics Inc", "--id", "acme", listed=None)
    fields = {k: v for k, v in US_ENTERPRISE.items() if k != "name"}
    r = admin.http.patch("/admin/v1/customers/acme", json=fields)
    assert r.status_code == 200 and r.json()["sanctions_status"] == "clear", r.text
    key = admin.key("acme")

    def decision() -> dict[str, Any]:
        response = chat(gateway, key)
        assert response.status_code == 200, response.text
        record: dict[str, Any] = admin.http.get(
            f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}").json()
        return record

    held = decision()
    assert held["effective_tier"] == "public", held
    # The record is clear and names no hit: the demotion says the hold is a
    # wait for the rescreen (it said "potential_match", as for a real lead).
    why = held["facts"]["tier_demotion"]
    assert why.startswith("sanctions screening status is potential_match: awaiting rescreen"), why
    # Explained over the admin API, the customer is held as the gateway holds
    # it (explain read the record without the list in force: enterprise, allowed).
    for who in ({"customer_id": "acme"}, {"key_id": key.split("_")[1]}):
        explained = admin.http.post("/admin/v1/policy/explain", json={
            **who, "request": {"model": "fable-5", "origin": "US"}})  # fmt: skip
        assert explained.status_code == 200, explained.text
        doc = explained.json()
        assert (doc["effective_tier"], doc["decision"]) == ("public", "deny"), (who, doc)
        assert doc["tier_demotion"] == why, (who, doc)
    # Its usage is reported against the tier it is metered at while held.
    usage = admin.http.get("/admin/v1/customers/acme/usage")
    assert usage.status_code == 200, usage.text
    assert (usage.json()["tier"], usage.json()["tier_demotion"]) == ("public", why), usage.json()
    # Refused an enterprise model, the record says what the hold waits for.
    refused = httpx.post(f"{gateway.url}/v1/chat/completions",
                         headers={"authorization": f"Bearer {key}", "x-forwarded-for": US_IP},
                         json={"model": "fable-5", "messages": [{"role": "user", "content": "hi"}]},
                         timeout=10)  # fmt: skip
    assert refused.status_code == 403, refused.text
    record = admin.http.get(
        f"/admin/v1/decisions/{refused.headers['x-gateway-decision-id']}").json()
    awaiting = record["facts"]["screening"]["awaiting_rescreen"]
    assert awaiting["screened_list_version"] is None and awaiting["list_version"], awaiting

    out = _cli(tmp_path, "rescreen", "--new-only", listed=listed)
    assert "screened 1 customers" in out and "0 newly held" in out, out
    assert within(5, lambda: decision()["effective_tier"] == "enterprise")


def test_with_the_hold_turned_off_a_stale_clear_is_served_as_it_stands(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """``GATEWAY_RESCREEN_HOLD=false``: an operator whose base takes hours to
    re-screen keeps serving verdicts of the previous list until reached."""
    listed = DATA / "sanctions_sample.csv"
    gateway = gateway_factory(env={"GATEWAY_SANCTIONS_LIST": str(listed),
                                   "GATEWAY_RESCREEN_HOLD": "false"})  # fmt: skip
    admin = Admin(gateway.url)
    _cli(tmp_path, "add", "Acme Robotics Inc", "--id", "acme", listed=None)
    fields = {k: v for k, v in US_ENTERPRISE.items() if k != "name"}
    assert admin.http.patch("/admin/v1/customers/acme", json=fields).status_code == 200
    response = chat(gateway, admin.key("acme"))
    assert response.status_code == 200, response.text
    record = admin.http.get(
        f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}").json()
    assert record["effective_tier"] == "enterprise", record
