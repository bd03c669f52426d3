"""`gateway policy impact` on a real audit log: drift is what the version in force did not decide.

Every flip was labelled "other: drift included" (with "N of the flips are of
records decided under another version") when all records were decided under
the running bundle and only the candidate differed: the report compared each
record's version with the candidate's, which no record can have before the
candidate is deployed.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.audit.ids import new_id
from gateway.audit.record import DecisionRecord
from gateway.audit.signing import load_signer
from gateway.audit.writer import AuditWriter
from gateway.cli.main import app
from gateway.db.session import create_engine
from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide
from gateway.policy.impact import impact
from gateway.policy.loader import load_bundle
from gateway.policy.replay import replay_facts
from tests.audit.conftest import make_settings
from tests.policy.conftest import POLICIES, facts, principal
from tests.support.schema import ensure_schema

runner = CliRunner()
OLDER = "0" * 64
"""A bundle that was in force before the running one."""
DENY_DE_HAIKU = """\
rules:
  - id: candidate-no-haiku-from-de
    effect: deny
    when: {model_in: [haiku-lite], origin_in: [DE]}
"""


def _record(
    bundle: CompiledBundle, i: int, country: str, ts: datetime, version: str
) -> DecisionRecord:
    """A decision as the pipeline records it: decided by ``bundle``, stamped ``version``."""
    who = principal(
        customer_id=f"cust-{i}", tier="enterprise", kyc_level="kyb_verified", citizenships={"US"}
    )
    request = facts("haiku-lite", country)
    decision = decide(who, request, bundle, ts)
    return DecisionRecord(
        id=new_id(),
        ts=ts,
        decision=decision.decision,
        status=200 if decision.allowed else 403,
        endpoint=request.endpoint,
        customer_id=who.customer_id,
        effective_tier=decision.effective_tier,
        origin_country=country,
        model="haiku-lite",
        rule_ids=list(decision.rule_ids),
        policy_version=version,
        facts=replay_facts(who, request),
    )


def _audit_log(db: Path, records: list[DecisionRecord]) -> None:
    settings = make_settings(db)

    async def write() -> None:
        engine = create_engine(settings)
        await ensure_schema(engine)
        writer = AuditWriter(engine, settings, load_signer(settings))
        await writer.start()
        for record in records:
            await writer.record(record)
        await writer.stop()
        await engine.dispose()

    asyncio.run(write())


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    directory = tmp_path / "candidate"
    shutil.copytree(POLICIES, directory)
    (directory / "zz-candidate.yaml").write_text(DENY_DE_HAIKU)
    return directory


def test_flips_under_the_running_version_are_the_candidates_not_drift(
    tmp_path: Path, candidate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = load_bundle(POLICIES)
    now = datetime.now(UTC)
    records = [
        _record(
            running, i, "DE" if i % 2 else "US", now - timedelta(minutes=60 - i), running.version
        )
        for i in range(40)
    ]
    db = tmp_path / "gw.db"
    _audit_log(db, records)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    result = runner.invoke(app, ["policy", "impact", str(candidate), "--since", "7d"])
    out = result.output
    assert result.exit_code == 0, out
    assert "40 recorded decisions, 0 skipped, 20 unchanged, 20 allow->deny" in out
    assert "drift" not in out and "another version" not in out, out
    assert f"in force: {running.version[:12]} (the version of the newest record)" in out
    assert "candidate-no-haiku-from-de" in out


def test_only_flips_of_records_from_other_versions_are_drift(
    tmp_path: Path, candidate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = load_bundle(POLICIES)
    now = datetime.now(UTC)
    # Yesterday under an older bundle, today under the running one: the
    # newest record names the version in force.
    older = [_record(running, i, "DE", now - timedelta(days=1, minutes=i), OLDER) for i in range(3)]
    current = [
        _record(running, 10 + i, "DE", now - timedelta(minutes=i), running.version)
        for i in range(5)
    ]
    db = tmp_path / "gw.db"
    _audit_log(db, older + current)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    result = runner.invoke(app, ["policy", "impact", str(candidate), "--since", "7d"])
    out = result.output
    assert result.exit_code == 0, out
    assert "8 recorded decisions, 0 skipped, 0 unchanged, 8 allow->deny" in out
    assert "3 of the flips are of records decided under a version other than the one in" in out
    assert f"in force: {running.version[:12]}" in out
    rows = [line for line in out.splitlines() if "│" in line]
    assert any(running.version[:12] in r and "in force" in r for r in rows), out
    assert any("000000000000" in r and "drift" in r for r in rows), out

    # The report itself: the reference is the newest record's version.
    report = impact([_as_item(r) for r in older + current], load_bundle(candidate))
    assert report.in_force == running.version
    assert report.drift_flips(load_bundle(candidate).version) == 3


def _as_item(record: DecisionRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "ts": record.ts,
        "decision": record.decision,
        "status": record.status,
        "policy_version": record.policy_version,
        "facts": record.facts,
    }
