"""`gateway audit farms` on a real SQLite log written by the audit writer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from gateway.audit.signing import load_signer
from gateway.audit.writer import AuditWriter
from gateway.cli.audit import app
from gateway.db.base import Base
from gateway.db.session import create_engine
from tests.audit import farm_scenario as farms
from tests.audit.conftest import make_settings

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def _populate(db: Path) -> None:
    settings = make_settings(db)

    async def run() -> None:
        engine = create_engine(settings)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        writer = AuditWriter(engine, settings, load_signer(settings))
        await writer.start()
        await farms.write_scenario(writer, BASE)
        await writer.stop()
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="module")
def farm_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("farms") / "gw.db"
    _populate(db)
    return db


@pytest.fixture
def cli_env(farm_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{farm_db}")
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("GATEWAY_UPSTREAM_URL", raising=False)
    monkeypatch.delenv("GATEWAY_TRUSTED_PROXIES", raising=False)
    monkeypatch.delenv("GATEWAY_AUDIT_IP_TRUNCATE", raising=False)
    return farm_db


def _json(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["farms", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    doc: dict[str, object] = orjson.loads(result.stdout)
    return doc


def _customers(doc: dict[str, object]) -> list[list[str]]:
    clusters = doc["clusters"]
    assert isinstance(clusters, list)
    return [c["customers"] for c in clusters]


def test_json_since(cli_env: Path) -> None:
    """--since 1d leaves out farm-a-1's request of two days ago (which would join the NAT)."""
    doc = _json("--since", "1d")
    assert _customers(doc) == [farms.FARM_B, farms.FARM_A]
    assert doc["weak_clusters_hidden"] == 1
    assert _customers(_json("--since", "1d", "--include-weak")) == [
        farms.FARM_B, farms.FARM_A, farms.NAT]
    week = _customers(_json("--since", "7d"))
    assert [*farms.FARM_A, *farms.NAT] in week


def test_json_from_to_and_options(cli_env: Path) -> None:
    start = (BASE - timedelta(hours=1)).isoformat()
    end = (BASE + timedelta(hours=1)).isoformat()
    doc = _json("--from", start, "--to", end, "--min-accounts", "5")
    assert _customers(doc) == [farms.FARM_A]
    assert doc["parameters"] == {"min_accounts": 5, "capabilities": ["coding", "agentic", "traces"],
                                 "max_ip_customers": 50, "max_prompt_customers": 10,
                                 "min_shared_prompts": 2, "include_weak": False,
                                 "ip_truncated": False}
    doc = _json("--from", start, "--capability", "agentic", "--max-prompt-customers", "14",
                "--min-shared-prompts", "1")
    (everyone,) = doc["clusters"]  # type: ignore[misc]
    assert everyone["accounts"] == 14 and everyone["capabilities"] == {"agentic": 16}
    assert _json("--from", end)["clusters"] == []


def test_table(cli_env: Path) -> None:
    result = CliRunner().invoke(app, ["farms", "--since", "1d"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "85 requests of 14 customers, 6 links" in out
    assert out.index("farm-b-1") < out.index("farm-a-1")
    assert "1.106" in out and "0.736" in out and "nat-1" not in out
    assert "1 weak clusters" in out and "--include-weak" in out
    weak = CliRunner().invoke(app, ["farms", "--since", "1d", "--include-weak"])
    assert "0.084 (weak)" in weak.stdout and "nat-1" in weak.stdout
    empty = CliRunner().invoke(app, ["farms", "--from", "2000-01-01T00:00:00Z",
                                     "--to", "2000-01-02T00:00:00Z"])
    assert empty.exit_code == 0 and "no clusters" in empty.stdout


def test_the_gateways_proxy_and_truncation_settings_apply(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Farm A's two addresses inside GATEWAY_TRUSTED_PROXIES link nobody; with
    GATEWAY_AUDIT_IP_TRUNCATE=24_48 stored addresses are networks, and say so."""
    monkeypatch.setenv("GATEWAY_TRUSTED_PROXIES", "198.51.100.0/24,203.0.113.0/24")
    doc = _json("--since", "1d")
    assert _customers(doc) == [farms.FARM_B]
    assert doc["ignored"]["proxy_addresses"] == 2  # type: ignore[index]
    monkeypatch.delenv("GATEWAY_TRUSTED_PROXIES")
    monkeypatch.setenv("GATEWAY_AUDIT_IP_TRUNCATE", "24_48")
    doc = _json("--since", "1d")
    farm_a = doc["clusters"][1]  # type: ignore[index]
    assert (farm_a["links"]["addresses"], farm_a["links"]["networks"]) == (0, 2)
    assert doc["parameters"]["ip_truncated"] is True  # type: ignore[index]


@pytest.mark.parametrize(("args", "named"), [
    (["--since", "7d", "--from", "2026-01-01T00:00:00Z"], "--since"),
    (["--to", "2026-01-01T00:00:00Z"], "--to"),
    (["--from", "2026-01-01"], "--from"),
    (["--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"], "--to"),
    (["--since", "7x"], "7x"),
    (["--min-accounts", "1"], "--min-accounts"),
    (["--max-ip-customers", "1"], "--max-ip-customers"),
    (["--min-shared-prompts", "0"], "--min-shared-prompts"),
    (["--format", "xml"], "--format"),
    (["--capability", 'co"ding'], "--capability"),
])
def test_usage_errors(cli_env: Path, args: list[str], named: str) -> None:
    result = CliRunner().invoke(app, ["farms", *args])
    assert result.exit_code == 2, result.output
    assert named in result.output


def test_a_missing_database_is_a_usage_error_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "x" / "typo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{typo}", COLUMNS="300")
    result = subprocess.run([sys.executable, "-m", "gateway.cli.main", "audit", "farms"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"{typo} does not exist" in result.stderr and "Traceback" not in result.stderr
    assert not typo.parent.exists()
