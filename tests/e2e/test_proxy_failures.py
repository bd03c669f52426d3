"""How the proxy behaves when things go wrong: upstream down or slow, clients
that disconnect, spoofed headers, bad bodies, bad configuration."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc, free_port

pytestmark = pytest.mark.e2e
XFF = {"x-forwarded-for": US_IP}
CHAT = {"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]}
MESSAGE = {"model": "haiku-lite", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def test_upstream_down_is_502_in_both_shapes(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory(upstream_url=f"http://127.0.0.1:{free_port()}")
    key = Admin(gateway.url).customer_with_key(**_enterprise())
    client = openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=key, default_headers=XFF, max_retries=0
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "api_error"  # type: ignore[index]
    response = httpx.post(
        f"{gateway.url}/v1/messages", json=MESSAGE, headers={**XFF, "x-api-key": key}
    )
    assert response.status_code == 502
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "api_error"


def test_upstream_slow_past_timeout_is_504(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory(env={"GATEWAY_UPSTREAM_READ_TIMEOUT": "0.5"})
    key = Admin(gateway.url).customer_with_key(**_enterprise())
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=CHAT,
        headers={**XFF, "authorization": f"Bearer {key}", "x-standin-delay-ms": "2000"},
        timeout=10,
    )
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "api_error"
    assert response.headers["x-gateway-decision-id"]


def test_client_disconnect_mid_stream_closes_upstream(
    gateway: Proc, enterprise_key: str, standin: Proc
) -> None:
    httpx.delete(f"{standin.url}/_standin/requests")
    headers = {
        **XFF,
        "authorization": f"Bearer {enterprise_key}",
        "x-standin-chunks": "100",
        "x-standin-interval-ms": "50",
    }
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            f"{gateway.url}/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers=headers,
        ) as response,
    ):
        assert response.status_code == 200
        for _ in response.iter_raw():
            break  # first chunk read, then the client goes away
    deadline = time.monotonic() + 5
    streams: dict[str, int] = {}
    while time.monotonic() < deadline:
        streams = httpx.get(f"{standin.url}/_standin/streams").json()
        if streams["cancelled"] >= 1:
            break
        time.sleep(0.1)
    assert streams["cancelled"] == 1, streams
    assert streams["finished"] == 0, streams


def test_spoofed_gateway_headers_and_client_credentials_never_reach_upstream(
    gateway: Proc, enterprise_key: str, standin_log: Callable[[], list[dict[str, object]]]
) -> None:
    spoofed = {
        "x-gateway-customer": "someone-else",
        "x-gateway-tier": "defense",
        "x-gateway-decision-id": "forged",
        "x-gateway-anything": "forged",
    }
    client = openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key=enterprise_key,
        default_headers={**XFF, **spoofed},
        max_retries=0,
    )
    client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    anthropic.Anthropic(
        base_url=gateway.url,
        api_key=enterprise_key,
        default_headers={**XFF, **spoofed},
        max_retries=0,
    ).messages.create(**MESSAGE)  # type: ignore[call-overload]
    received = standin_log()
    assert len(received) == 2
    for request in received:
        headers: dict[str, str] = request["headers"]  # type: ignore[assignment]
        assert enterprise_key not in " ".join(headers.values())
        assert headers["x-gateway-tier"] == "enterprise"
        assert headers["x-gateway-customer"] != "someone-else"
        assert headers["x-gateway-decision-id"] != "forged"
        assert "x-gateway-anything" not in headers
    openai_headers: dict[str, str] = received[0]["headers"]  # type: ignore[assignment]
    anthropic_headers: dict[str, str] = received[1]["headers"]  # type: ignore[assignment]
    assert openai_headers["authorization"] == "Bearer upstream-secret-key"
    assert "x-api-key" not in openai_headers
    assert anthropic_headers["x-api-key"] == "upstream-secret-key"
    assert "authorization" not in anthropic_headers


def test_bad_bodies_get_400_and_413_in_the_client_shape(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory(env={"GATEWAY_MAX_BODY_BYTES": "4096"})
    key = Admin(gateway.url).customer_with_key(**_enterprise())
    auth = {**XFF, "authorization": f"Bearer {key}", "content-type": "application/json"}
    cases = [
        ("/v1/chat/completions", b"{not json", 400),
        ("/v1/chat/completions", b'{"messages": []}', 400),
        ("/v1/chat/completions", b"[1, 2]", 400),
        ("/v1/chat/completions", b'{"model": "haiku-lite", "x": "' + b"a" * 5000 + b'"}', 413),
        ("/v1/messages", b"{not json", 400),
        ("/v1/messages", b'{"model": 3}', 400),
        ("/v1/messages", b'{"model": "haiku-lite", "x": "' + b"a" * 5000 + b'"}', 413),
    ]
    for path, body, status in cases:
        response = httpx.post(f"{gateway.url}{path}", content=body, headers=auth)
        assert response.status_code == status, (path, body[:40], response.text)
        doc = response.json()
        if path.startswith("/v1/messages"):
            assert doc["type"] == "error"
            expected = "request_too_large" if status == 413 else "invalid_request_error"
            assert doc["error"]["type"] == expected
        else:
            assert doc["error"]["type"] == "invalid_request_error"
        assert response.headers["x-gateway-decision-id"]


def test_missing_upstream_outside_demo_is_a_startup_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_POLICY_DIR"] = str(REPO / "policies")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "GATEWAY_UPSTREAM_URL" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_AUDIT_SIGNING_KEY", "/nonexistent/signing.pem"),
        ("GATEWAY_GEOIP_DB", "__junk__"),
        ("GATEWAY_REDIS_URL", "http://127.0.0.1:6379"),
        ("GATEWAY_OIDC_ISSUER", "https://issuer.example"),  # without an audience
        ("GATEWAY_LOG_LEVEL", "loud"),
        ("GATEWAY_CACHE_TTL_SECONDS", "-5"),
        ("GATEWAY_DATABASE_URL", "mysql://db.example/gateway"),
    ],
)
def test_settings_the_workers_would_trip_on_are_startup_errors(
    tmp_path: Path, variable: str, value: str
) -> None:
    # These were first used in the worker's lifespan: exit 3 and a traceback
    # that did not name the variable (and exit 0 under --workers N).
    if value == "__junk__":
        junk = tmp_path / "junk.mmdb"
        junk.write_bytes(b"not a MaxMind database")
        value = str(junk)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env[variable] = value
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "serve", "--demo", "--workers", "2",
         "--port", str(free_port())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert variable in " ".join((result.stdout + result.stderr).split()), result.stderr
    assert "Traceback" not in result.stderr


def _enterprise() -> dict[str, object]:
    from tests.e2e.conftest import US_ENTERPRISE

    return dict(US_ENTERPRISE)
