"""Unauthenticated refusals are limited per client address: past the limit a
prober gets 429 in its API's shape, and instead of one record per refusal the
log gets one summary record per address and window, in the signed chain
(``gateway.proxy.probes``). Identified callers are never limited by it."""

from __future__ import annotations

import subprocess
import sys
import time

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import Admin, GatewayConfig, gateway_env

pytestmark = pytest.mark.e2e
PROBER_IP = "9.9.9.9"
LIMIT = 5
WINDOW = 4
PROBES = 12
WRONG_KEY = "gk_0123456789abcdef_wrongsecret"
CHAT = {"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]}


def _at_window_start() -> None:
    # The burst must fall in one fixed window (aligned to the epoch): start it
    # just after a boundary, so it has the whole window to finish in.
    while time.time() % WINDOW > 0.2:
        time.sleep(0.05)


def _openai(url: str, key: str, ip: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0,
                         default_headers={"x-forwarded-for": ip})  # fmt: skip


def _cli(cfg: GatewayConfig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], cwd=cfg.tmp,
                          env=gateway_env(cfg), capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_a_burst_of_wrong_keys_is_limited_and_summarised(
    gateway_factory: GatewayFactory,
) -> None:
    env = {"GATEWAY_UNAUTHENTICATED_LIMIT": str(LIMIT),
           "GATEWAY_UNAUTHENTICATED_WINDOW_SECONDS": str(WINDOW)}  # fmt: skip
    gateway = gateway_factory(env=env)
    admin = Admin(gateway.url)
    good_key = admin.customer_with_key(**US_ENTERPRISE)
    prober = _openai(gateway.url, WRONG_KEY, PROBER_IP)

    _at_window_start()
    statuses: list[int] = []
    limited_ids: set[str] = set()
    for _ in range(PROBES - 2):
        try:
            prober.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
            if exc.status_code == 429:
                assert isinstance(exc, openai.RateLimitError)
                assert exc.response.headers["retry-after"].isdigit()
                assert exc.response.headers["x-should-retry"] == "false"
                limited_ids.add(exc.response.headers["x-gateway-decision-id"])
    # An unknown route and the Anthropic SDK count for the same address.
    missing = httpx.post(f"{gateway.url}/v1/nope", json={}, timeout=10,
                         headers={"x-forwarded-for": PROBER_IP})  # fmt: skip
    statuses.append(missing.status_code)
    limited_ids.add(missing.headers["x-gateway-decision-id"])
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=WRONG_KEY, max_retries=0,
                                 default_headers={"x-forwarded-for": PROBER_IP})  # fmt: skip
    with pytest.raises(anthropic.RateLimitError) as refused:
        claude.messages.create(model="haiku-lite", max_tokens=8,
                               messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    statuses.append(refused.value.status_code)
    limited_ids.add(refused.value.response.headers["x-gateway-decision-id"])

    # A good key is served, from another address and from the prober's own.
    for ip in (US_IP, PROBER_IP):
        served = _openai(gateway.url, good_key, ip).chat.completions.with_raw_response.create(
            **CHAT  # type: ignore[arg-type]
        )
        assert served.status_code == 200

    assert statuses == [401] * LIMIT + [429] * (PROBES - LIMIT), statuses
    assert len(limited_ids) == 1, limited_ids  # every 429 names the one summary
    summary_id = limited_ids.pop()

    # Named in the metrics: each way a refusal leaves no record of its own is counted.
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    assert ('gateway_decisions_total{decision="deny",rule_id="unauthenticated-rate-limited"} '
            f"{float(PROBES - LIMIT)}") in metrics, metrics  # fmt: skip

    # Individually recorded: exactly the refusals up to the limit.
    listed = admin.http.get("/admin/v1/decisions",
                            params={"rule_id": "authentication-failed", "limit": 100}).json()
    assert [r["client_ip"] for r in listed["items"]] == [PROBER_IP] * LIMIT, listed

    # After the window, the summary record accounts for the rest.
    deadline = time.time() + WINDOW + 15
    found = admin.http.get(f"/admin/v1/decisions/{summary_id}")
    while found.status_code == 404 and time.time() < deadline:
        time.sleep(0.5)
        found = admin.http.get(f"/admin/v1/decisions/{summary_id}")
    assert found.status_code == 200, found.text
    record = found.json()
    assert record["kind"] == "probes_limited", record
    payload = record["payload"]
    assert payload["client_ip"] == PROBER_IP
    assert payload["refused"] == PROBES - LIMIT
    assert payload["limit"] == LIMIT
    assert payload["by_status"] == {"401": PROBES - LIMIT - 1, "404": 1}
    assert payload["by_endpoint"] == {"/v1/chat/completions": PROBES - LIMIT - 2,
                                      "/v1/messages": 1, "/v1/nope": 1}  # fmt: skip

    # In the export, and in a chain that verifies.
    cfg = GatewayConfig(tmp=gateway.log_path.parent, upstream_url=None)
    out = cfg.tmp / "export.jsonl"
    done = _cli(cfg, "audit", "export", "-o", str(out))
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["id"] for r in lines if r.get("kind") == "probes_limited"] == [summary_id]
    verified = _cli(cfg, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_zero_turns_the_limit_off(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory(env={"GATEWAY_UNAUTHENTICATED_LIMIT": "0"})
    prober = _openai(gateway.url, WRONG_KEY, PROBER_IP)
    for _ in range(3):
        with pytest.raises(openai.AuthenticationError):
            prober.chat.completions.create(**CHAT)  # type: ignore[call-overload]
