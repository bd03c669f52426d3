"""A customer's residence may be an ISO 3166-2 region (Crimea is ``UA-43``), not
only a country: the bundled ``sanctioned-residence`` rule lists regions, and a
record that could only say ``UA`` would let a Crimean resident be served."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from gateway.cli import customers
from gateway.kyc.schemas import CustomerCreate, CustomerPatch
from gateway.kyc.signatures import sign
from tests.admin.conftest import WEBHOOK_SECRET, AdminEnv

URL = "/admin/v1/customers"


@pytest.mark.parametrize(
    ("given", "stored"), [("UA-43", "UA-43"), ("ua-40", "UA-40"), ("US-CA", "US-CA"), ("de", "DE")]
)
def test_residence_is_a_country_or_a_region(given: str, stored: str) -> None:
    assert CustomerCreate(name="x", residence=given).residence == stored
    assert CustomerPatch(residence=given).residence == stored


@pytest.mark.parametrize("bad", ["UA-99", "ZZ", "USA", "ZZ-01", "UA-", "-43", "U-43"])
def test_residence_must_be_a_real_code(bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CustomerCreate(name="x", residence=bad)
    message = caught.value.errors()[0]["msg"]
    assert "ISO 3166-1 alpha-2 country" in message and "ISO 3166-2" in message


async def test_admin_api_stores_a_region_residence(env: AdminEnv) -> None:
    r = await env.client.post(
        URL, json={"id": "crimea-1", "name": "Oksana Example", "residence": "UA-43"},
        headers=env.auth("compliance"),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["residence"] == "UA-43"
    r = await env.client.patch(f"{URL}/crimea-1", json={"residence": "ua-40"},
                               headers=env.auth("compliance"))  # fmt: skip
    assert r.status_code == 200 and r.json()["residence"] == "UA-40", r.text
    # The identify stage serves the record as stored: what the policy rules see.
    key = await env.client.post(f"{URL}/crimea-1/keys", json={}, headers=env.auth("admin"))
    principal = await env.identifier.identify(key.json()["key"], None)
    assert principal.residence == "UA-40"
    r = await env.client.post(URL, json={"name": "x", "residence": "UA-99"},
                              headers=env.auth("admin"))  # fmt: skip
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "residence"]


async def test_kyc_webhook_keeps_a_region_residence(env: AdminEnv) -> None:
    record = {"id": "crimea-2", "name": "Taras Example", "residence": "UA-43"}
    r = await env.client.post(URL, json=record, headers=env.auth("admin"))
    assert r.status_code == 201, r.text
    body = (b'{"id": "evt-crimea", "customer_id": "crimea-2", "kyc_level": "id_verified",'
            b' "kyc_verified_at": "2026-03-01T11:00:00Z"}')  # fmt: skip
    ts = int(datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp())  # the fixture's clock
    r = await env.client.post(
        "/admin/v1/kyc/webhook", content=body,
        headers={"x-gateway-kyc-signature": f"t={ts},v1={sign(WEBHOOK_SECRET, ts, body)}",
                 "content-type": "application/json"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    customer = r.json()["customer"]
    assert customer["kyc_level"] == "id_verified" and customer["residence"] == "UA-43"


def test_cli_adds_a_region_residence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("GATEWAY_SANCTIONS_LIST", raising=False)
    runner = CliRunner()
    add = ["add", "Oksana Example", "--id", "c1", "--residence", "UA-43"]
    r = runner.invoke(customers.app, add)
    assert r.exit_code == 0, r.output
    r = runner.invoke(customers.app, ["show", "c1"])
    assert r.exit_code == 0 and "UA-43" in r.output
    bad = runner.invoke(customers.app, ["add", "X", "--residence", "UA-99"])
    assert bad.exit_code == 2 and "residence" in bad.output


def test_policy_matches_region_residences(tmp_path: Path) -> None:
    """``residence_in`` over a group of countries and/or regions: a region-coded
    residence matches a group listing the region, or its country (as origins
    do); a country-coded one does not match a group listing only regions."""
    from gateway.policy.engine import decide
    from gateway.policy.loader import load_bundle
    from tests.policy.conftest import AFTER_DIRECTIVE, MINIMAL, POLICIES, facts, principal

    bundled = load_bundle(POLICIES)
    for region in ("UA-43", "UA-40", "UA-14", "UA-09"):
        p = principal(tier="public", citizenships={"UA"}, residence=region)
        decision = decide(p, facts("haiku-lite", "DE"), bundled, AFTER_DIRECTIVE)
        assert decision.rule_ids == ("sanctioned-residence",), region
    kyiv = principal(tier="public", citizenships={"UA"}, residence="UA-30")
    assert decide(kyiv, facts("haiku-lite", "DE"), bundled, AFTER_DIRECTIVE).allowed

    rules = """\
country_groups:
  occupied: {regions: [UA-43]}
  ukraine: {countries: [UA]}
rules:
  - {id: all, effect: allow, when: {}}
  - {id: occupied, effect: deny, when: {residence_in: occupied}}
  - {id: ukraine, effect: deny, when: {residence_in: ukraine}}
"""
    for name, text in {**MINIMAL, "rules.yaml": rules}.items():
        (tmp_path / name).write_text(text)
    bundle = load_bundle(tmp_path)

    def rule_ids(residence: str) -> tuple[str, ...]:
        return decide(principal(residence=residence), facts("small", "DE"), bundle,
                      AFTER_DIRECTIVE).rule_ids  # fmt: skip

    assert rule_ids("UA-43") == ("occupied", "ukraine")
    assert rule_ids("UA-30") == ("ukraine",)
    assert rule_ids("UA") == ("ukraine",)  # the region is not known: only the country rule
    assert rule_ids("DE") == ("all",)
