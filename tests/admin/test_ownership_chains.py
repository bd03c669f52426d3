"""Ownership chains on the admin API: stored, read back and given to the
policy engine whole; malformed trees are a 422 naming the entry's path."""

from __future__ import annotations

from typing import Any

from gateway.identity.ownership import Ownership
from gateway.identity.store import load_customer
from tests.admin.conftest import AdminEnv

URL = "/admin/v1/customers"

LION = {
    "country": "SG",
    "percent": 60.0,
    "name": "Lion Holdings Pte",
    "ownership": [{"country": "CN", "percent": 100.0}],
}


async def test_a_chain_is_stored_read_back_and_reaches_the_principal(env: AdminEnv) -> None:
    body = {"id": "sg-chain", "name": "Merlion Robotics Pte", "kind": "organization",
            "incorporated_in": "SG",
            "ownership": [LION, {"country": "SG", "percent": 40}]}  # fmt: skip
    r = await env.client.post(URL, json=body, headers=env.auth("compliance"))
    assert r.status_code == 201, r.text
    # Flat entries read exactly as they always did: no name, no ownership key.
    assert r.json()["ownership"] == [LION, {"country": "SG", "percent": 40.0}]
    assert (await env.client.get(f"{URL}/sg-chain", headers=env.auth("admin"))).json() == r.json()
    async with env.services.sessions() as session:
        p = await load_customer(session, "sg-chain")
    assert p is not None
    assert p.ownership == (
        Ownership("SG", 60.0, "Lion Holdings Pte", (Ownership("CN", 100.0),)),
        Ownership("SG", 40.0),
    )
    assert p.controlled_by({"CN"}, 50.0)
    # A PATCH replaces the tree; the history shows the chain.
    r = await env.client.patch(f"{URL}/sg-chain", json={"ownership": [{"country": "SG",
                               "percent": 100}]}, headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 200 and r.json()["ownership"] == [{"country": "SG", "percent": 100.0}]
    history = (await env.client.get(f"{URL}/sg-chain/history", headers=env.auth("admin"))).json()
    assert history["items"][-1]["changes"]["ownership"]["before"][0] == LION


def _nest(levels: int) -> list[dict[str, Any]]:
    tree: list[dict[str, Any]] = [{"country": "CN", "percent": 100}]
    for _ in range(levels - 1):
        tree = [{"country": "SG", "percent": 100, "name": "Shell", "ownership": tree}]
    return tree


async def test_a_malformed_tree_is_a_422_naming_the_entry(env: AdminEnv) -> None:
    await env.client.post(URL, json={"id": "c1", "name": "x"}, headers=env.auth("admin"))
    over = [{**LION, "ownership": [{"country": "CN", "percent": 70}, {"country": "CN",
             "percent": 40}]}]  # fmt: skip
    cases: list[tuple[list[dict[str, Any]], list[str | int], str]] = [
        ([{**LION, "ownership": [{"country": "CN", "percent": 70},
                                 {"country": "CN", "percent": 140}]}],
         ["body", "ownership", 0, "ownership", 1, "percent"], "less than or equal to 100"),
        ([{**LION, "ownership": [{"country": "ZZ", "percent": 5}]}],
         ["body", "ownership", 0, "ownership", 0, "country"], "ZZ"),
        (over, ["body"], "ownership[0].ownership: percentages add up to 110, more than 100"),
        ([{**LION, "ownership": [{"country": "CN", "percent": 0}]}],
         ["body"], "ownership[0].ownership[0].percent: an owner's owner must hold more than 0"),
        (_nest(9), ["body", "ownership"], "ownership[0]" + ".ownership[0]" * 7 + ".ownership: "
         "owners more than 8 levels deep"),
        ([{"country": "SG", "percent": 0.3, "ownership": [{"country": "SG", "percent": 1}] * 64}]
         * 5, ["body", "ownership"], "more than 256 owner entries"),
    ]  # fmt: skip
    for ownership, loc, message in cases:
        for method, url, extra in (("POST", URL, {"name": "x"}), ("PATCH", f"{URL}/c1", {})):
            r = await env.client.request(method, url, json={**extra, "ownership": ownership},
                                         headers=env.auth("admin"))  # fmt: skip
            assert r.status_code == 422, (method, loc, r.text[:300])
            errors = r.json()["detail"]
            assert any(e["loc"] == loc and message in e["msg"] for e in errors), (message, errors)
    # Eight levels is the limit, not beyond it.
    r = await env.client.post(URL, json={"name": "deep", "ownership": _nest(8)},
                              headers=env.auth("admin"))  # fmt: skip
    assert r.status_code == 201, r.text


async def test_owner_names_are_screened_like_the_customers_own(env: AdminEnv) -> None:
    """An entity 50%-owned by a listed party is blocked (OFAC FAQ 398): a
    listed name anywhere in the chain holds the customer at potential_match."""
    listed_parent = {"country": "SG", "percent": 60, "name": "Lion Holdings Pte",
                     "ownership": [{"country": "AE", "percent": 100,
                                    "name": "Zoltrava Shipping Ltd"}]}  # fmt: skip
    r = await env.client.post(URL, json={"id": "held", "name": "Merlion Trading Pte",
                              "kind": "organization", "ownership": [listed_parent]},
                              headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["sanctions_status"] == "potential_match", r.json()
    assert r.json()["screening"]["best_match"] == "Zoltrava Shipping"
    # Listed owners arriving later, by PATCH, are screened as a rename is.
    r = await env.client.post(URL, json={"id": "later", "name": "Merlion Two Pte",
                              "kind": "organization"}, headers=env.auth("compliance"))  # fmt: skip
    assert r.json()["sanctions_status"] == "clear"
    r = await env.client.patch(f"{URL}/later", json={"ownership": [listed_parent]},
                               headers=env.auth("compliance"))  # fmt: skip
    assert r.json()["sanctions_status"] == "potential_match", r.json()


async def test_a_tree_nested_past_what_json_can_read_is_a_422(env: AdminEnv) -> None:
    """Depth is bounded at 8, but the body is read before the record is: a
    tree thousands of levels deep made the admin API's JSON check raise
    RecursionError (a 500) instead of refusing the body."""
    for depth in (900, 5000):
        body = ('{"name": "x", "ownership": ' + '[{"country": "SG", "percent": 1, "ownership": '
                * depth + "[]" + "}]" * depth + "}")  # fmt: skip
        r = await env.client.post(URL, content=body, headers={
            **env.auth("admin"), "content-type": "application/json"})  # fmt: skip
        assert r.status_code == 422, (depth, r.status_code, r.text[:200])
        assert any("deep" in e["msg"] for e in r.json()["detail"]), r.json()
