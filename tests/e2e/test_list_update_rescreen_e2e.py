"""A gateway started with a sanctions list its customers were not screened
against screens every one of them again before serving: a list update that
names a customer holds it without anyone remembering `gateway customers
rescreen`. Started again with the same list, nobody is screened again."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.processes import REPO, Admin

pytestmark = pytest.mark.e2e
DATA = REPO / "tests" / "data"


def _history(admin: Admin, cid: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = admin.http.get(f"/admin/v1/customers/{cid}/history").json()[
        "items"
    ]
    return items


def test_a_new_list_at_start_up_holds_the_customers_it_names(
    gateway_factory: GatewayFactory,
) -> None:
    first = gateway_factory(env={"GATEWAY_SANCTIONS_LIST": str(DATA / "sanctions_sample.csv")})
    created = Admin(first.url).customer(id="halvard", name="Halvard Quenneth Brisk")
    assert created["sanctions_status"] == "clear", created  # the CSV list does not name him
    first.stop()

    new_list = {"GATEWAY_SANCTIONS_LIST": str(DATA / "sanctions_sample.ftm.jsonl")}
    second = gateway_factory(env=new_list)
    admin = Admin(second.url)
    record = admin.http.get("/admin/v1/customers/halvard").json()
    assert record["sanctions_status"] == "potential_match", record
    rescreens = [h for h in _history(admin, "halvard") if h["action"] == "customer.rescreen"]
    assert [h["actor"] for h in rescreens] == ["gateway:sanctions-list-update"], rescreens
    second.stop()

    # The same list again: every customer is screened against it already.
    third = gateway_factory(env=new_list)
    again = Admin(third.url)
    screened_at = again.http.get("/admin/v1/customers/halvard").json()["screening"]["screened_at"]
    assert screened_at == record["screening"]["screened_at"]
    assert [h["action"] for h in _history(again, "halvard")].count("customer.rescreen") == 1


def test_a_long_rescreen_runs_in_the_background_while_the_gateway_serves(
    gateway_factory: GatewayFactory,
) -> None:
    """More customers to screen than GATEWAY_RESCREEN_INLINE_MAX: the gateway
    answers /healthz at once (the factory waits for it) and the rescreen runs
    beside it; until it reaches a customer, that customer is held
    (tests/identity/test_rescreen_gate.py)."""
    first = gateway_factory(env={"GATEWAY_SANCTIONS_LIST": str(DATA / "sanctions_sample.csv")})
    Admin(first.url).customer(id="halvard", name="Halvard Quenneth Brisk")
    Admin(first.url).customer(id="jane", name="Jane Smith")
    first.stop()

    updated = str(DATA / "sanctions_sample.ftm.jsonl")
    second = gateway_factory(env={"GATEWAY_SANCTIONS_LIST": updated,
                                  "GATEWAY_RESCREEN_INLINE_MAX": "1"})  # fmt: skip
    assert "2 customers to screen against list" in second.output(), second.output()
    admin = Admin(second.url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        record = admin.http.get("/admin/v1/customers/halvard").json()
        if record["sanctions_status"] == "potential_match":
            break
        time.sleep(0.2)
    assert record["sanctions_status"] == "potential_match", record
    rescreens = [h for h in _history(admin, "halvard") if h["action"] == "customer.rescreen"]
    assert [h["actor"] for h in rescreens] == ["gateway:sanctions-list-update"], rescreens
    while time.monotonic() < deadline and "screened 2 customers" not in second.output():
        time.sleep(0.2)
    assert "1 newly held as potential_match" in second.output(), second.output()
