"""The decision log through the real server (issue 6 acceptance): one record per
decision whatever the outcome, records survive SIGKILL, the store down means 503."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import (
    Admin,
    GatewayConfig,
    Proc,
    free_port,
    gateway_env,
    start_gateway,
)

pytestmark = pytest.mark.e2e
KP_IP = "175.45.176.1"
PROMPT = "marker-prompt-zebra-7781"


def post(
    gateway: Proc, path: str, key: str | None, ip: str = US_IP, **body: object
) -> httpx.Response:
    headers = {"x-forwarded-for": ip}
    if key:
        headers["authorization"] = f"Bearer {key}"
    payload = body or {"model": "haiku-lite", "messages": [{"role": "user", "content": PROMPT}]}
    return httpx.post(f"{gateway.url}{path}", headers=headers, json=payload, timeout=10)


def record_of(admin: Admin, decision_id: str) -> dict[str, object]:
    response = admin.http.get(f"/admin/v1/decisions/{decision_id}")
    assert response.status_code == 200, response.text
    record: dict[str, object] = response.json()
    return record


def test_every_request_of_a_mixed_run_has_exactly_one_record(gateway: Proc, admin: Admin) -> None:
    enterprise = admin.customer_with_key(**US_ENTERPRISE)
    public = admin.customer_with_key(
        name="Pat Public",
        kind="individual",
        citizenships=["US"],
        residence="US",
        kyc_level="email_verified",
        tier="public",
    )
    owned = admin.customer_with_key(
        **{**US_ENTERPRISE, "name": "Harbor Ltd", "ownership": [{"country": "CN", "percent": 60}]}
    )
    german = admin.customer_with_key(
        name="Greta Example",
        kind="individual",
        citizenships=["DE"],
        residence="DE",
        kyc_level="kyb_verified",
        tier="enterprise",
    )
    frontier = {"model": "fable-5", "messages": [{"role": "user", "content": "hi"}]}
    cases: list[tuple[httpx.Response, int, str | None]] = [
        (post(gateway, "/v1/chat/completions", enterprise), 200, "tier-entitlement"),
        (
            post(
                gateway,
                "/v1/messages",
                enterprise,
                model="haiku-lite",
                max_tokens=8,
                messages=[{"role": "user", "content": "hi"}],
            ),
            200,
            "tier-entitlement",
        ),
        (post(gateway, "/v1/chat/completions", enterprise, ip=KP_IP), 403, "sanctioned-origin"),
        (post(gateway, "/v1/chat/completions", owned), 403, "controlled-by-country-of-concern"),
        (
            post(gateway, "/v1/chat/completions", german, **frontier),
            403,
            "directive-frontier-us-persons-only",
        ),
        (post(gateway, "/v1/chat/completions", "gk_bogus_key"), 401, None),
        (post(gateway, "/v1/chat/completions", None), 401, None),
        (
            httpx.post(
                f"{gateway.url}/v1/chat/completions",
                content=b"{oops",
                headers={"authorization": f"Bearer {enterprise}"},
            ),
            400,
            None,
        ),
        (
            httpx.get(
                f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {enterprise}"}
            ),
            200,
            "models-list",
        ),
    ]
    for _ in range(20):
        post(gateway, "/v1/chat/completions", public)
    cases.append((post(gateway, "/v1/chat/completions", public), 429, "quota-exceeded"))

    ids = []
    for response, status, rule in cases:
        assert response.status_code == status, response.text
        decision_id = response.headers["x-gateway-decision-id"]
        ids.append(decision_id)
        record = record_of(admin, decision_id)
        assert record["status"] == status
        assert record["decision"] == ("allow" if status < 400 else "deny")
        if rule is not None:
            assert rule in record["rule_ids"], record  # type: ignore[operator]
        assert record["policy_version"] == response.headers["x-gateway-policy-version"]
        assert PROMPT not in str(record), "prompt text must never be stored"
    assert len(set(ids)) == len(ids)
    # A made-up key id is not recorded as a key an auditor could look up.
    bogus = next(i for (r, _, _), i in zip(cases, ids, strict=True)
                 if r.request.headers.get("authorization") == "Bearer gk_bogus_key")
    record = record_of(admin, bogus)
    assert record["key_id"] is None, record
    assert record["reasons"] == ["unknown gateway key (claimed id bogus)"], record

    # Forwarded decisions get their outcome as a linked record.
    deadline = time.monotonic() + 5
    forwarded = ids[:2]
    while time.monotonic() < deadline:
        outcomes = [record_of(admin, i).get("outcomes") or [] for i in forwarded]
        if all(outcomes):
            break
        time.sleep(0.1)
    for decision_id in forwarded:
        outcome = record_of(admin, decision_id)["outcomes"][0]  # type: ignore[index]
        assert outcome["upstream_status"] == 200
        assert outcome["tokens_in"] is not None and outcome["tokens_out"] is not None
    for refused in ids[2:]:
        assert record_of(admin, refused).get("outcomes") in (None, [])

    # The listing holds exactly one record per request made (20 public + cases).
    listed, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = admin.http.get("/admin/v1/decisions", params=params).json()
        listed.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(listed) == len(cases) + 20
    assert set(ids) <= {item["id"] for item in listed}


def audit_verify(cfg: GatewayConfig) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "audit", "verify"],
        cwd=cfg.tmp,
        env=gateway_env(cfg),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_sigkill_mid_run_loses_no_acknowledged_decision(tmp_path: Path, standin: Proc) -> None:
    cfg = GatewayConfig(
        tmp=tmp_path, upstream_url=standin.url, env={"GATEWAY_TRUSTED_PROXIES": "127.0.0.0/8"}
    )
    port = free_port()
    gateway = start_gateway(cfg, port=port)
    key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
    received: list[tuple[int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    response = client.post(
                        f"{gateway.url}/v1/chat/completions",
                        headers={"authorization": f"Bearer {key}", "x-forwarded-for": US_IP},
                        json={
                            "model": "haiku-lite",
                            "messages": [{"role": "user", "content": "x"}],
                        },
                    )
                except httpx.HTTPError:
                    continue  # the process is gone: no response, nothing acknowledged
                received.append((response.status_code, response.headers["x-gateway-decision-id"]))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    gateway.proc.send_signal(signal.SIGKILL)
    gateway.proc.wait(10)
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert len(received) > 50, "the load did not get going"

    restarted = start_gateway(cfg, port=free_port())
    try:
        admin = Admin(restarted.url)
        missing = [
            d for _, d in received if admin.http.get(f"/admin/v1/decisions/{d}").status_code != 200
        ]
        assert not missing, f"{len(missing)} acknowledged decisions lost, e.g. {missing[:3]}"
        # The restarted replica continues the chain; verify covers everything.
        post(restarted, "/v1/chat/completions", key)
    finally:
        restarted.stop()
    result = audit_verify(cfg)
    assert result.returncode == 0, result.stdout + result.stderr


def test_database_unavailable_is_503_and_nothing_is_forwarded(
    gateway_factory: GatewayFactory,
    tmp_path: Path,
    standin_log: Callable[[], list[dict[str, object]]],
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    gateway = gateway_factory(env={"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'gw.db'}"})
    key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
    assert post(gateway, "/v1/chat/completions", key).status_code == 200
    forwarded = len(standin_log())
    moved = tmp_path / "moved"
    data.rename(moved)
    try:
        for path, shape in (("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")):
            body = {
                "model": "haiku-lite",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "x"}],
            }
            response = post(gateway, path, key, **body)
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["type"] == ("overloaded_error" if shape == "anthropic" else "api_error")
        assert len(standin_log()) == forwarded, "a request went upstream without its record"
        # The database check itself: the bundled policy's mythos-5 upstream is
        # unreachable here, so a 503 alone would not say the database was seen down.
        not_ready = httpx.get(f"{gateway.url}/readyz")
        assert not_ready.status_code == 503 and not_ready.json()["checks"]["database"] is False
    finally:
        moved.rename(data)
    deadline = time.monotonic() + 5
    status = 503
    while status == 503 and time.monotonic() < deadline:
        status = post(gateway, "/v1/chat/completions", key).status_code
        time.sleep(0.1)
    assert status == 200


