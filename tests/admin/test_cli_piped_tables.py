"""``gateway customers list`` (and ``keys list``) piped to a file keep every cell.

Rich sizes a table to 80 columns when stdout is no terminal: a customer id
long enough to need them all squeezed every other column out of the table
(names, tiers and statuses gone), and a shorter one cut names and key ids
with an ellipsis. Piped, the tables are now as wide as their content, as the
audit and policy reports have been (``messages.piped_width``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app

runner = CliRunner()
LONG_ID = "customer-with-a-very-long-identifier-from-the-crm-system-000123456789"
LONG_NAME = "Maximilian Alexander von Hohenzollern-Sigmaringen Holdings GmbH"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str | None]:
    return {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
            "COLUMNS": None, "GATEWAY_POLICY_DIR": None}  # fmt: skip


def test_customers_list_keeps_every_column_and_cell_when_piped(
    env: dict[str, str | None],
) -> None:
    added = runner.invoke(app, ["customers", "add", LONG_NAME, "--id", LONG_ID], env=env)
    assert added.exit_code == 0, added.output
    result = runner.invoke(app, ["customers", "list"], env=env)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if LONG_ID in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells == [LONG_ID, LONG_NAME, "individual", "public", "none", "", "clear",
                     "active"], result.output  # fmt: skip
    assert "…" not in result.output


def test_keys_list_keeps_the_key_id_when_piped(env: dict[str, str | None]) -> None:
    added = runner.invoke(app, ["customers", "add", LONG_NAME, "--id", LONG_ID], env=env)
    assert added.exit_code == 0, added.output
    made = runner.invoke(app, ["keys", "create", LONG_ID, "--name", "a-long-key-name-for-ci"],
                         env=env)  # fmt: skip
    assert made.exit_code == 0, made.output
    key_id = re.search(r"gk_([0-9a-f]+)_", made.output)
    assert key_id is not None, made.output
    result = runner.invoke(app, ["keys", "list", LONG_ID], env=env)
    assert result.exit_code == 0, result.output
    assert key_id.group(1) in result.output and "a-long-key-name-for-ci" in result.output, (
        result.output
    )
    assert "…" not in result.output, result.output
