"""Reports written to a file or a pipe keep every id whole.

Rich sizes output to 80 columns when stdout is no terminal, and its tables
then cut cells short with an ellipsis: the `impact --customers` report an
officer saved for sign-off listed customers as "cus-cn-…" and rules as
"directi…", ids no one can act on.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli.main import app
from tests.policy.conftest import MINIMAL, write_bundle

runner = CliRunner()
LONG_ID = "customer-with-a-long-enough-id-0001"
RULE = "directive-2026-11-28-no-small-model-for-cn-citizens"


def test_the_customers_impact_keeps_long_ids_when_piped(tmp_path: Path) -> None:
    entitlement = "  - {id: entitlement, effect: allow, when: {model_allowed_for_tier: true}}\n"
    directive = f"  - {{id: {RULE}, effect: deny, when: {{citizenship_in: [CN]}}}}\n"
    old = write_bundle(tmp_path / "old", dict(MINIMAL, **{"rules.yaml": "rules:\n" + entitlement}))
    new = write_bundle(
        tmp_path / "new", dict(MINIMAL, **{"rules.yaml": "rules:\n" + directive + entitlement})
    )
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
           "COLUMNS": None}  # fmt: skip
    added = runner.invoke(app, ["customers", "add", "Li Wei Long Name", "--id", LONG_ID,
                                "--citizenship", "CN", "--residence", "SG"], env=env)  # fmt: skip
    assert added.exit_code == 0, added.output
    result = runner.invoke(
        app, ["policy", "impact", str(new), "--customers", "--against", str(old)], env=env
    )
    assert result.exit_code == 0, result.output
    assert "1 lose a model" in result.output, result.output
    assert LONG_ID in result.output and RULE in result.output, result.output
    assert "…" not in result.output, result.output
