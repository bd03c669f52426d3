"""``gateway policy explain --key`` against a real SQLite file seeded by the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import customers, keys
from gateway.cli.main import app as gateway_cli
from tests.policy.conftest import POLICIES

runner = CliRunner()
AT = ("--at", "2026-07-01T00:00:00Z")


@pytest.fixture(autouse=True)
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    monkeypatch.setenv("GATEWAY_POLICY_DIR", str(POLICIES))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    monkeypatch.delenv("GATEWAY_SANCTIONS_LIST", raising=False)
    return path


def explain(*args: str) -> tuple[int, str]:
    result = runner.invoke(gateway_cli, ["policy", "explain", *args])
    return result.exit_code, result.output


def mint(*scope: str) -> tuple[str, str]:
    """A German enterprise customer's key: (its id, the whole key)."""
    added = runner.invoke(customers.app, [
        "add", "Greta", "--id", "greta", "--citizenship", "DE", "--residence", "DE",
        "--kyc-level", "kyb_verified", "--tier", "enterprise"])  # fmt: skip
    assert added.exit_code == 0, added.output
    created = runner.invoke(keys.app, ["create", "greta", "--name", "ci", *scope])
    assert created.exit_code == 0, created.output
    match = re.search(r"gk_([0-9a-f]+)_[a-z2-7]{52}", created.output)
    assert match is not None, created.output
    return match.group(1), match.group(0)


def test_a_key_is_explained_through_its_scope() -> None:
    key_id, whole = mint("--model", "fable-5")
    ask = ("--model", "haiku-lite", "--origin", "DE")  # now: the key exists
    code, out = explain("--customer", "greta", *ask, "--json")
    assert code == 0 and json.loads(out)["rule_ids"] == ["tier-entitlement"], out
    code, out = explain("--key", f"gk_{key_id}", *ask, "--json")
    assert code == 1, out
    doc = json.loads(out)
    assert doc["rule_ids"] == ["key-scope"] and doc["principal"]["id"] == "greta"
    assert doc["key_scope"]["key"]["outcome"] == "decides"
    code, out = explain("--key", key_id, *ask)
    assert code == 1, out
    assert f"key gk_{key_id} (ci) of greta: live" in out, out
    assert "allowed_models [fable-5]: haiku-lite → false" in out, out
    assert "scope check: decides: This key may use 'fable-5' only, not 'haiku-lite'." in out, out
    # The whole key is refused, and its secret never printed.
    code, out = explain("--key", whole, *ask)
    assert code == 2 and whole.split("_")[-1] not in out and "gk_<id>" in out, out
    code, out = explain("--key", "nosuchkey", *ask)
    assert code == 2 and "no key nosuchkey" in out, out
    code, out = explain("--key", key_id, "--customer", "greta", *ask)
    assert code == 2, out


def test_a_revoked_key_is_refused_before_any_policy() -> None:
    key_id, _ = mint()
    assert runner.invoke(keys.app, ["revoke", key_id]).exit_code == 0
    code, out = explain("--key", key_id, "--model", "haiku-lite", "--origin", "DE", "--json")
    assert code == 1, out
    doc = json.loads(out)
    assert (doc["status"], doc["rule_ids"], doc["reasons"]) == (
        401, ["authentication-failed"], ["gateway key revoked"])  # fmt: skip
    assert doc["policy_decision"]["rule_ids"] == ["tier-entitlement"], doc["policy_decision"]


def test_quota_use_in_the_gateways_memory_is_said_to_be_out_of_reach() -> None:
    mint()
    ask = ("--customer", "greta", "--model", "haiku-lite", "--origin", "DE", *AT)
    code, out = explain(*ask, "--json")
    assert code == 0, out
    quota = json.loads(out)["quota"]
    assert quota["usage"]["source"] is None, quota
    assert all("used" not in q for q in quota["limits"]), quota["limits"]
    _, out = explain(*ask)
    assert "quota use: not read: without GATEWAY_REDIS_URL the gateway counts" in out, out
    assert "0 of" not in out, out


def test_a_key_asked_about_before_it_was_minted_was_unknown() -> None:
    key_id, _ = mint()
    code, out = explain("--key", key_id, "--model", "haiku-lite", "--origin", "DE", *AT)
    assert code == 1, out
    assert "401" in out and "rules: authentication-failed" in out, out
    assert f"key gk_{key_id} (ci) of greta: not yet created (created at " in out, out
    assert "the policy alone, had the key been live: allow (tier-entitlement)" in out, out


def test_an_unreachable_redis_is_said_and_the_explanation_stands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.redis_server import free_port

    mint()
    monkeypatch.setenv("GATEWAY_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, out = explain("--customer", "greta", "--model", "haiku-lite", "--origin", "DE")
    assert code == 0, out
    assert "quota use: not read (redis store): quota store unavailable" in out, out
    assert "explain names no API key (--key or key_id names one)" in out, out
