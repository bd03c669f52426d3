"""Names must say something, and a new key must not be born expired.

A whitespace-only customer name was stored and screened ``clear`` with score
0 (there is nothing to match), so a record nobody can identify passed
sanctions screening; token and key names had the same hole, the CLI let
``--name ""`` through, and ``keys create --expires-at`` took a past time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import customers, keys, tokens
from tests.admin.conftest import AdminEnv

BLANKS = ["", " ", "   ", "\t\n", "\u00a0\u2003"]
runner = CliRunner()


@pytest.mark.parametrize("blank", BLANKS)
async def test_api_refuses_blank_names(env: AdminEnv, blank: str) -> None:
    admin = env.auth("admin")
    r = await env.client.post("/admin/v1/customers", json={"name": blank}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"], r.text
    r = await env.client.post("/admin/v1/customers", json={"id": "c1", "name": "Real"},
                              headers=admin)  # fmt: skip
    r = await env.client.patch("/admin/v1/customers/c1", json={"name": blank}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"], r.text
    r = await env.client.post("/admin/v1/tokens", json={"role": "auditor", "name": blank},
                              headers=admin)  # fmt: skip
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"], r.text
    r = await env.client.post("/admin/v1/customers/c1/keys", json={"name": blank}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"], r.text


async def test_api_refuses_a_key_that_expires_before_it_is_made(env: AdminEnv) -> None:
    admin = env.auth("admin")
    await env.client.post("/admin/v1/customers", json={"id": "c1", "name": "Real"}, headers=admin)
    now = "2026-03-01T12:00:00Z"  # the fixture's clock
    for past in ("2026-03-01T11:59:59Z", now, "2020-01-01T00:00:00+02:00"):
        r = await env.client.post("/admin/v1/customers/c1/keys", json={"expires_at": past},
                                  headers=admin)  # fmt: skip
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "expires_at"]
        assert "past" in r.json()["detail"][0]["msg"]
    soon = {"expires_at": "2026-03-01T12:00:01Z"}
    r = await env.client.post("/admin/v1/customers/c1/keys", json=soon, headers=admin)
    assert r.status_code == 201, r.text


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("GATEWAY_SANCTIONS_LIST", raising=False)
    return path


@pytest.mark.parametrize("blank", BLANKS)
def test_cli_refuses_blank_names(database: Path, blank: str) -> None:
    r = runner.invoke(customers.app, ["add", blank])
    assert r.exit_code == 2 and "name" in r.output, r.output
    r = runner.invoke(tokens.app, ["create", "--role", "auditor", "--name", blank])
    assert r.exit_code == 2 and "--name" in r.output, r.output
    assert runner.invoke(customers.app, ["add", "Real", "--id", "c1"]).exit_code == 0
    r = runner.invoke(keys.app, ["create", "c1", "--name", blank])
    assert r.exit_code == 2 and "--name" in r.output, r.output


def test_cli_refuses_a_key_that_expires_before_it_is_made(database: Path) -> None:
    assert runner.invoke(customers.app, ["add", "Real", "--id", "c1"]).exit_code == 0
    r = runner.invoke(keys.app, ["create", "c1", "--expires-at", "2020-01-01T00:00:00Z"])
    assert r.exit_code == 2 and "--expires-at" in r.output and "past" in r.output, r.output
    r = runner.invoke(keys.app, ["create", "c1", "--expires-at", "2999-01-01T00:00:00Z"])
    assert r.exit_code == 0, r.output
