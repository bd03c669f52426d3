"""CLI changes straight into the database reach a running gateway (the change feed)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The gateway_factory's database; nothing else of the environment.
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
           "PATH": "/usr/bin:/bin", "COLUMNS": "200"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip


def within(seconds: float, check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_an_admin_token_revoked_with_the_cli_is_refused(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    gateway = gateway_factory()
    made = cli(tmp_path, "tokens", "create", "--role", "compliance", "--name", "kyc-desk")
    assert made.returncode == 0, made.stdout + made.stderr
    match = re.search(r"gat_([0-9a-f]+)_[a-z2-7]{52}", made.stdout)
    assert match is not None, made.stdout
    client = Admin(gateway.url, token=match.group(0)).http
    assert client.get("/admin/v1/customers").status_code == 200  # and now cached
    listed = cli(tmp_path, "tokens", "list")
    assert listed.returncode == 0 and match.group(1) in listed.stdout, listed.stdout
    revoked = cli(tmp_path, "tokens", "revoke", match.group(0))
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert within(3, lambda: client.get("/admin/v1/customers").status_code == 401)


def test_a_customer_suspended_and_activated_with_the_cli(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    gateway = gateway_factory()
    key = Admin(gateway.url).customer_with_key(id="cus_cli", **US_ENTERPRISE)

    def status() -> int:
        return chat(gateway, key).status_code

    assert status() == 200
    assert cli(tmp_path, "customers", "suspend", "cus_cli").returncode == 0
    assert within(3, lambda: status() == 403)
    activated = cli(tmp_path, "customers", "activate", "cus_cli")
    assert activated.returncode == 0, activated.stdout + activated.stderr
    assert within(3, lambda: status() == 200)


def chat(gateway: Proc, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": US_IP},
        json={"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def test_a_customer_a_list_update_names_is_held_by_rescreen_in_the_running_gateway(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    data = Path(__file__).resolve().parents[1] / "data"
    gateway = gateway_factory(env={"GATEWAY_SANCTIONS_LIST": str(data / "sanctions_sample.csv")})
    admin = Admin(gateway.url)
    key = admin.customer_with_key(
        id="cus_halvard", **{**US_ENTERPRISE, "name": "Halvard Quenneth Brisk"}
    )

    def tier() -> str | None:
        response = chat(gateway, key)
        record = admin.http.get(f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}")
        value: str | None = record.json()["effective_tier"]
        return value

    assert tier() == "enterprise"  # the list in force does not name him
    # The list is updated (the next one names him) and the rescreen runs.
    env = {"GATEWAY_SANCTIONS_LIST": str(data / "sanctions_sample.ftm.jsonl")}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "customers", "rescreen"],
        env={**env, "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
             "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cus_halvard" in done.stdout, done.stdout
    assert within(3, lambda: tier() == "public")
    history = admin.http.get("/admin/v1/customers/cus_halvard/history").json()["items"]
    assert any(h["action"] == "customer.rescreen" for h in history), history
