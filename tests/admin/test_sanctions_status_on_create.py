"""``POST /customers`` takes a customer record, ``sanctions_status`` included
(SPEC section 4). Rule: the stored status is the stricter of the one given
and the screening result (clear < potential_match < confirmed_match). A
compliance officer can record a confirmed match at creation; a caller cannot
pass ``clear`` to skip the screening of a name the list matches. Clearing a
match stays an explicit PATCH (a review of an existing record)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import customers
from tests.admin.conftest import DATA, AdminEnv

URL = "/admin/v1/customers"
LISTED = "Zoltrava Shipping Ltd"  # an alias on tests/data/sanctions_sample.csv
UNLISTED = "Teodor Marchetti"


@pytest.mark.parametrize(
    ("name", "given", "stored"),
    [
        (UNLISTED, "confirmed_match", "confirmed_match"),  # known to compliance, not to the list
        (UNLISTED, "potential_match", "potential_match"),
        (UNLISTED, "clear", "clear"),
        (LISTED, "clear", "potential_match"),  # cannot be waved through
        (LISTED, "confirmed_match", "confirmed_match"),
        (LISTED, None, "potential_match"),
    ],
)
async def test_stored_status_is_the_stricter_of_given_and_screened(
    env: AdminEnv, name: str, given: str | None, stored: str
) -> None:
    body: dict[str, object] = {"name": name}
    if given is not None:
        body["sanctions_status"] = given
    r = await env.client.post(URL, json=body, headers=env.auth("compliance"))
    assert r.status_code == 201, r.text
    assert r.json()["sanctions_status"] == stored
    assert r.json()["screening"]["list_version"]  # screened either way


async def test_a_confirmed_match_given_at_creation_reaches_the_policy(env: AdminEnv) -> None:
    body = {"id": "m1", "name": UNLISTED, "sanctions_status": "confirmed_match"}
    r = await env.client.post(URL, json=body, headers=env.auth("compliance"))
    assert r.status_code == 201, r.text
    key = await env.client.post(f"{URL}/m1/keys", json={}, headers=env.auth("admin"))
    principal = await env.identifier.identify(key.json()["key"], None)
    assert principal.sanctions_status == "confirmed_match"
    r = await env.client.post(URL, json={"name": "x", "sanctions_status": "cleared"},
                              headers=env.auth("admin"))  # fmt: skip
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "sanctions_status"]


def test_cli_add_takes_a_sanctions_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.csv"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    add = ["add", UNLISTED, "--id", "c1", "--sanctions-status", "confirmed_match"]
    r = runner.invoke(customers.app, add)
    assert r.exit_code == 0, r.output
    assert "confirmed_match" in runner.invoke(customers.app, ["show", "c1"]).output
    r = runner.invoke(customers.app, ["add", LISTED, "--id", "c2", "--sanctions-status", "clear"])
    assert r.exit_code == 0, r.output
    assert "potential_match" in runner.invoke(customers.app, ["show", "c2"]).output
