"""A policy edit made while the audit log cannot commit takes effect once it
can, without another edit."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from tests.ops.helpers import TRUSTED, US_ENTERPRISE, chat
from tests.ops.test_workers import EXTRA_RULE
from tests.support.processes import REPO, Admin, GatewayConfig, Proc, start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_an_edit_refused_for_want_of_its_audit_record_is_retried(
    tmp_path: Path, standin: Proc
) -> None:
    """Seen in the chaos drill: a deny rule (an emergency directive) written
    into the policy directory while the database was locked by another
    process. The swap could not be recorded, so it was refused (right: every
    bundle that decides has its record), but the watch then waited for the
    next edit: with the database back, the gateway went on serving under the
    old bundle, and the customer the new rule names kept being allowed, for
    as long as nobody touched the files again. A reload refused for want of
    its audit record is now retried until it is recorded."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    # The file watch only: the change poll and SIGHUP are not what is tested.
    env = {**TRUSTED, "GATEWAY_POLICY_DIR": str(policies), "GATEWAY_CHANGE_POLL_SECONDS": "0"}
    gateway = start_gateway(GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env))
    try:
        record = {**US_ENTERPRISE, "id": "cus_workers_policy"}
        target = Admin(gateway.url).customer_with_key(**record)
        assert chat(gateway.url, target).status_code == 200
        blocker = sqlite3.connect(tmp_path / "gateway.db", timeout=5)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            rules = policies / "rules.yaml"
            rules.write_text(rules.read_text().rstrip("\n") + "\n" + EXTRA_RULE)
            # The reload runs and fails to record its swap (busy timeout, 5 s).
            deadline = time.monotonic() + 15
            while "could not record the swap" not in gateway.output():
                assert time.monotonic() < deadline, gateway.output()[-3000:]
                time.sleep(0.2)
        finally:
            blocker.rollback()
            blocker.close()
        deadline = time.monotonic() + 10
        status = chat(gateway.url, target).status_code
        while status != 403 and time.monotonic() < deadline:
            time.sleep(0.2)
            status = chat(gateway.url, target).status_code
        assert status == 403, "the edit made during the outage never took effect"
    finally:
        gateway.stop()
