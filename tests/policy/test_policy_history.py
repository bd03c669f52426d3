"""`gateway audit policies`: which bundle was in force when, from the signed log.

Every load, reload and refusal is an audit record, but nothing listed them:
the officer confirming "which version decided which request" after a
directive, a refused edit and a rollback had to export the log and read JSON
whose reload records each carry a whole bundle.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.audit.signing import load_signer
from gateway.audit.writer import AuditWriter
from gateway.cli.main import app
from gateway.db.session import create_engine
from tests.audit.conftest import make_settings
from tests.support.schema import ensure_schema

runner = CliRunner()
BASE, DIRECTIVE, CANDIDATE = "a" * 64, "d" * 64, "c" * 64


def test_loads_refusals_and_the_rollback_are_listed_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "gw.db"
    settings = make_settings(db)

    async def write() -> None:
        engine = create_engine(settings)
        await ensure_schema(engine)
        writer = AuditWriter(engine, settings, load_signer(settings))
        await writer.start()
        await writer.record_event("policy_reload", {"old_version": None, "new_version": BASE})
        await writer.record_event("policy_reload", {"old_version": BASE, "new_version": DIRECTIVE})
        error = "d.yaml:8 rules[0].when.capability_in[0]: unknown capability 'code'"
        await writer.record_event("policy_refused", {
            "kept_version": DIRECTIVE, "candidate_version": None, "errors_total": 1,
            "errors": [error]})  # fmt: skip
        await writer.record_event("policy_reload", {"old_version": DIRECTIVE, "new_version": BASE})
        await writer.stop()
        await engine.dispose()

    asyncio.run(write())
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    result = runner.invoke(app, ["audit", "policies", "--since", "1h"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line.split(None, 1)[1] for line in result.output.splitlines() if line[:2] == "20"]
    node = settings.node_id
    assert lines == [
        f"{node} loaded  {BASE[:12]} (start)",
        f"{node} loaded  {BASE[:12]} -> {DIRECTIVE[:12]}",
        f"{node} REFUSED kept {DIRECTIVE[:12]}: 1 error: d.yaml:8 rules[0].when.capability_in[0]: "
        "unknown capability 'code'",
        f"{node} loaded  {DIRECTIVE[:12]} -> {BASE[:12]}",
    ], result.output


def test_a_loaded_directive_says_when_it_takes_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The version does not change at a directive's start instant: only the
    # deciding rule does. The timeline says when that happens.
    from datetime import UTC, datetime, timedelta

    from gateway.policy.loader import canonical_content, load_dir
    from tests.policy.conftest import POLICIES

    start = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    stamp = start.isoformat().replace("+00:00", "Z")
    bundle_dir = tmp_path / "bundle"
    import shutil

    shutil.copytree(POLICIES, bundle_dir)
    (bundle_dir / "zz.yaml").write_text(
        "rules:\n  - id: directive-cn-haiku-coding\n    effect: deny\n"
        "    when: {model_in: [haiku-lite], citizenship_in: [CN]}\n"
        f'    effective: {{from: "{stamp}"}}\n'
    )
    loaded = load_dir(bundle_dir)
    assert loaded.bundle is not None and loaded.version is not None
    db = tmp_path / "gw.db"
    settings = make_settings(db)

    async def write() -> None:
        engine = create_engine(settings)
        await ensure_schema(engine)
        writer = AuditWriter(engine, settings, load_signer(settings))
        await writer.start()
        await writer.record_event("policy_reload", {
            "old_version": BASE, "new_version": loaded.version,
            "bundle": canonical_content(loaded.bundle)})  # fmt: skip
        await writer.stop()
        await engine.dispose()

    asyncio.run(write())
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    result = runner.invoke(app, ["audit", "policies", "--since", "1h"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"    rule directive-cn-haiku-coding starts deciding at {stamp}" in result.output, (
        result.output
    )
    # The bundled directive started long before this load: not repeated.
    assert "directive-frontier-us-persons-only" not in result.output, result.output
