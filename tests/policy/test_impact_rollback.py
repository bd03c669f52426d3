"""`gateway policy impact` after a rollback: the version in force is the last one loaded.

The report took the version in force from the newest decision record. Roll a
directive back (a reload to the old bundle) before anyone calls again, and
the newest decision still names the directive's version: impact of that very
bundle then said "in force: ...; it is the candidate", telling the officer
the directive was still live when it had been withdrawn.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.audit.signing import load_signer
from gateway.audit.writer import AuditWriter
from gateway.cli.main import app
from gateway.db.session import create_engine
from gateway.policy.impact import impact
from gateway.policy.loader import load_bundle
from gateway.policy.replay import replay_facts
from tests.audit.conftest import make_settings
from tests.policy.conftest import POLICIES, facts, principal
from tests.policy.test_impact_drift import DENY_DE_HAIKU, _record
from tests.support.schema import ensure_schema

runner = CliRunner()


def test_a_reload_after_the_newest_decision_names_the_version_in_force() -> None:
    directive = "d" * 64
    rolled_back = "b" * 64
    t0 = datetime(2026, 11, 28, 8, tzinfo=UTC)
    running = load_bundle(POLICIES)
    decided = {
        "facts": replay_facts(principal(), facts("haiku-lite", "US")),
        "decision": "allow",
        "status": 200,
        "ts": t0,
        "policy_version": directive,
    }
    reload = {
        "kind": "policy_reload",
        "ts": t0 + timedelta(minutes=1),
        "payload": {"old_version": directive, "new_version": rolled_back},
    }
    records = [decided, reload]
    report = impact(records, running)
    assert report.in_force == rolled_back
    assert report.total == 1  # the reload is no decision


def test_impact_of_a_withdrawn_directive_does_not_call_it_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidate = tmp_path / "candidate"
    shutil.copytree(POLICIES, candidate)
    (candidate / "zz-directive.yaml").write_text(DENY_DE_HAIKU)
    directive = load_bundle(candidate)
    running = load_bundle(POLICIES)
    now = datetime.now(UTC)
    db = tmp_path / "gw.db"
    settings = make_settings(db)

    async def write() -> None:
        engine = create_engine(settings)
        await ensure_schema(engine)
        writer = AuditWriter(engine, settings, load_signer(settings))
        await writer.start()
        # Served under the directive's version, then rolled back: no call since.
        await writer.record(_record(directive, 1, "US", now - timedelta(minutes=5),
                                    directive.version))  # fmt: skip
        await writer.record_event("policy_reload", {
            "old_version": directive.version, "new_version": running.version})  # fmt: skip
        await writer.stop()
        await engine.dispose()

    asyncio.run(write())
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    result = runner.invoke(app, ["policy", "impact", str(candidate), "--since", "1h"])
    out = result.output
    assert result.exit_code == 0, out
    assert f"in force: {running.version[:12]} (the version loaded last)" in out, out
    assert "it is the candidate" not in out, out
