"""The emergency-directive drill, end to end: a directive against the citizens
of one country (and requests from it), written as a rule with a future
``effective.from``, checked with the CLI, shipped to a running gateway, and
audited from the decision log."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import US_IP, GatewayFactory
from tests.support.processes import REPO, Admin

pytestmark = pytest.mark.e2e

ZA_IP = "41.0.0.1"  # South Africa in the offline RIR data
GOV = {"kind": "individual", "kyc_level": "government_cleared", "tier": "government"}


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: this checkout's code, whichever checkout the venv installed.
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
           "PATH": "/usr/bin:/bin", "COLUMNS": "200", "PYTHONPATH": str(REPO)}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def directive(start: datetime) -> str:
    return f"""
  - id: directive-za-frontier
    effect: deny
    when:
      model_in: [fable-5, mythos-5]
      any: [{{citizenship_in: [ZA]}}, {{origin_in: [ZA]}}]
    effective: {{from: "{rfc3339(start)}"}}
    reason: Frontier models are suspended for this jurisdiction by government order.
"""


def chat(gateway_url: str, key: str, ip: str, model: str = "fable-5") -> httpx.Response:
    return httpx.post(
        f"{gateway_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": ip},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        timeout=30,
    )


def test_impact_of_a_directive_taking_effect_later_names_it_and_counts_customers(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live)})
    admin = Admin(gateway.url)
    dual = admin.customer_with_key(
        id="za-us-dual", name="Naledi Smith", citizenships=["ZA", "US"], residence="US", **GOV
    )
    us = admin.customer_with_key(
        id="us-only", name="John Doe", citizenships=["US"], residence="US", **GOV
    )
    for _ in range(3):
        assert chat(gateway.url, dual, US_IP).status_code == 200
    assert chat(gateway.url, us, ZA_IP).status_code == 200  # a US citizen travelling in ZA
    assert chat(gateway.url, us, US_IP).status_code == 200

    start = datetime.now(UTC) + timedelta(hours=4)
    candidate = tmp_path / "candidate"
    shutil.copytree(live, candidate)
    with (candidate / "rules.yaml").open("a") as rules:
        rules.write(directive(start))

    # The officer's question: whom will it cut? The recorded decisions all
    # predate the directive, so replayed at their own times it decides none of
    # them; the report must say so and how to ask at the effective time.
    plain = cli(tmp_path, "policy", "impact", str(candidate), "--since", "7d")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "0 allow->deny" in plain.stdout, plain.stdout
    assert "directive-za-frontier takes effect" in plain.stdout, plain.stdout
    assert f"--at {rfc3339(start)}" in plain.stdout, plain.stdout

    at = cli(tmp_path, "policy", "impact", str(candidate), "--since", "7d", "--at", rfc3339(start))
    assert at.returncode == 0, at.stdout + at.stderr
    assert "4 allow->deny" in at.stdout, at.stdout
    # Requests are not customers: four flips are two customers.
    assert "2 customers would be refused" in at.stdout, at.stdout
    assert "za-us-dual" in at.stdout and "us-only" in at.stdout, at.stdout


LICENCE = """
  - id: licence-za-0042-sipho
    effect: exempt
    exempts: [directive-za-frontier]
    when: {customer_in: [za-licensed]}
    legal_basis: Licence ZA-0042 (drill), issued to the named customer only
    reason: Served under licence ZA-0042.
"""


def test_a_licensed_customer_is_exempt_and_every_request_served_under_the_licence_is_recorded(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    with (live / "rules.yaml").open("a") as rules:
        rules.write(directive(datetime.now(UTC) - timedelta(hours=1)) + LICENCE)
    checked = cli(tmp_path, "policy", "validate", str(live))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live)})
    admin = Admin(gateway.url)
    # Both are US permanent residents (US persons), so only the new directive applies.
    person = {"citizenships": ["ZA"], "residence": "US", "attributes": ["us_permanent_resident"]}
    licensed = admin.customer_with_key(id="za-licensed", name="Sipho Dlamini", **person, **GOV)
    other = admin.customer_with_key(id="za-other", name="Thabo Nkosi", **person, **GOV)

    served = chat(gateway.url, licensed, US_IP)
    assert served.status_code == 200, served.text
    refused = chat(gateway.url, other, US_IP)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "directive-za-frontier"
    # The refused client learns nothing of the licence or who holds one.
    assert "licence" not in refused.text.lower() and "za-licensed" not in refused.text

    # The auditor: every request served under the licence, from the log alone.
    decisions = admin.http.get(
        "/admin/v1/decisions", params={"rule_id": "licence-za-0042-sipho"}
    ).json()["items"]
    assert [d["id"] for d in decisions] == [served.headers["x-gateway-decision-id"]]
    assert decisions[0]["rule_ids"] == ["tier-entitlement", "licence-za-0042-sipho"]
    assert decisions[0]["citizenships"] == ["ZA"]

    # A licence naming a rule that does not exist is refused at load, with its line.
    broken = tmp_path / "broken"
    shutil.copytree(live, broken)
    text = (
        (broken / "rules.yaml")
        .read_text()
        .replace("exempts: [directive-za-frontier]", "exempts: [directive-za-fronteir]")
    )
    (broken / "rules.yaml").write_text(text)
    bad = cli(tmp_path, "policy", "validate", str(broken))
    assert bad.returncode == 1, bad.stdout
    assert "exempts[0]: unknown rule id 'directive-za-fronteir'" in bad.stdout, bad.stdout
