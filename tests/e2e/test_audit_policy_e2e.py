"""The regulator asks "which policy decided request R, and why": the log alone
answers, including the text of the policy version R names, proven by its hash.

A real gateway decides under one bundle, takes a reload that adds an
emergency directive, and decides under the new one. From a JSONL export alone
(and from the database) `gateway audit policy VERSION` gives each version's
text, whose SHA-256 is the version; the directive's rule, reason and
effective date are in it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin

pytestmark = pytest.mark.e2e

DIRECTIVE = """
  - id: emergency-directive-haiku
    effect: deny
    when: {model_in: [haiku-lite]}
    effective: {from: "2026-01-01T00:00:00Z"}
    reason: Emergency directive 7 withdraws haiku-lite.
"""


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
           "PATH": "/usr/bin:/bin", "COLUMNS": "200"}  # fmt: skip
    if "PYTHONPATH" in os.environ:  # the checkout under test, when it is not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], env=env,
                          cwd=tmp_path, capture_output=True, check=False, timeout=60)


def ask(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=10, json={
        "model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": US_IP})


def test_the_policy_a_decision_names_is_retrievable_and_proven(
    tmp_path: Path, gateway_factory: GatewayFactory,
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(policies),
                                   "GATEWAY_POLICY_WATCH": "false"})
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    before = ask(gateway.url, key)
    assert before.status_code == 200, before.text
    with (policies / "rules.yaml").open("a") as fh:
        fh.write(DIRECTIVE)
    assert admin.http.post("/admin/v1/policy/reload").json()["ok"] is True
    after = ask(gateway.url, key)
    assert after.status_code == 403 and "emergency-directive-haiku" in after.text
    old, new = (r.headers["x-gateway-policy-version"] for r in (before, after))
    assert old != new

    done = cli(tmp_path, "audit", "export", "-o", str(tmp_path / "all.jsonl"))
    assert done.returncode == 0, done.stderr
    # Offline: the export alone names and carries the directive's policy.
    got = cli(tmp_path, "audit", "policy", new, "--export", str(tmp_path / "all.jsonl"))
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(got.stdout).hexdigest() == new
    rule = next(r for r in orjson.loads(got.stdout)["rules"]
                if r["id"] == "emergency-directive-haiku")
    assert rule["reason"] == "Emergency directive 7 withdraws haiku-lite."
    assert rule["effective"]["from"].startswith("2026-01-01T00:00:00")
    # From the database too, by a prefix, and the earlier version as well.
    got = cli(tmp_path, "audit", "policy", old[:12])
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(got.stdout).hexdigest() == old
    assert b"emergency-directive-haiku" not in got.stdout
    # Verify reports every version the records name as carried.
    public = tmp_path / "public.pem"
    public.write_bytes(cli(tmp_path, "audit", "public-key").stdout)
    done = cli(tmp_path, "audit", "verify", "--export", str(tmp_path / "all.jsonl"),
               "--public-key", str(public), "--json")
    report = orjson.loads(done.stdout)
    assert done.returncode == 0, report
    assert report["policy_versions"] == sorted({old, new})
    assert report["policy_texts_missing"] == []
    # An unknown version is a failure, not an empty answer.
    assert cli(tmp_path, "audit", "policy", "ab" * 32).returncode == 1
    # Over the admin API too (auditor role): the exact bytes, whose SHA-256 is
    # the version, by full version or a unique prefix; 404 for a version the
    # log holds no text for, 400 for what is no version.
    got_http = admin.http.get(f"/admin/v1/audit/policies/{new}")
    assert got_http.status_code == 200, got_http.text
    assert hashlib.sha256(got_http.content).hexdigest() == new
    assert got_http.headers["content-type"].startswith("application/json")
    prefix = admin.http.get(f"/admin/v1/audit/policies/{old[:12]}")
    assert prefix.status_code == 200 and hashlib.sha256(prefix.content).hexdigest() == old
    assert admin.http.get(f"/admin/v1/audit/policies/{'ab' * 32}").status_code == 404
    assert admin.http.get("/admin/v1/audit/policies/not-hex").status_code == 400
