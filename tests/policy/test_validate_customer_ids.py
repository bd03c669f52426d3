"""``gateway policy validate --check-customers``: ``customer_in`` ids (a
licence's above all) checked against the customer records.

Only the records know the ids: a licence whose customer id is mistyped
validated clean, matched nobody, and the licensed customer was refused once
the directive started. Opt-in, since validating needs no database."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import customers
from gateway.cli.main import app as gateway_cli
from tests.policy.conftest import MINIMAL, write_bundle

runner = CliRunner()

RULES = """rules:
  - id: directive
    effect: deny
    when: {model_in: [big]}
  - id: licence
    effect: exempt
    exempts: [directive]
    when: {customer_in: [greta, gretta]}
"""


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("COLUMNS", "200")
    return write_bundle(tmp_path / "b", dict(MINIMAL, **{"rules.yaml": RULES}))


def _add_greta() -> None:
    added = runner.invoke(customers.app, ["add", "Greta", "--id", "greta"])
    assert added.exit_code == 0, added.output


def test_an_id_no_customer_holds_is_a_warning(bundle: Path) -> None:
    _add_greta()
    result = runner.invoke(gateway_cli, ["policy", "validate", str(bundle), "--check-customers"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warned == [
        "warning: rule licence names customer_in 'gretta', which no customer record holds: "
        "it matches nobody"
    ], result.output
    assert "customer_in ids: 2 checked, 1 unknown" in result.output, result.output


def test_without_the_option_no_database_is_read(bundle: Path, tmp_path: Path) -> None:
    result = runner.invoke(gateway_cli, ["policy", "validate", str(bundle)])
    assert result.exit_code == 0 and "customer_in" not in result.output, result.output
    assert not (tmp_path / "cli.db").exists()


def test_a_missing_database_is_a_usage_error_and_is_not_created(
    bundle: Path, tmp_path: Path
) -> None:
    result = runner.invoke(gateway_cli, ["policy", "validate", str(bundle), "--check-customers"])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "cli.db").exists()
