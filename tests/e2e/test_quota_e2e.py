"""Quotas through the real server, with a real Redis where they are shared
(issue 5 acceptance)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import PUBLIC_PERSON, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.e2e
XFF = {"x-forwarded-for": US_IP}


# A bundle with small limits that a test can exhaust in a second.
SMALL_QUOTAS = """
quotas:
  public:
    default_max_tokens: 100
    default: {requests_per_minute: 5, tokens_per_day: 200000}
    agentic: {requests_per_minute: 0}
  enterprise:
    default_max_tokens: 100
    default: {requests_per_minute: 600, tokens_per_minute: 1000}
    agentic: {requests_per_minute: 120, concurrent_streams: 1}
  research:
    default: {requests_per_minute: 120}
  government:
    default: {requests_per_minute: 1200}
  defense:
    default: {requests_per_minute: 1200}
"""


def chat(gateway: Proc, key: str, **extra: object) -> httpx.Response:
    headers = {**XFF, "authorization": f"Bearer {key}"}
    headers.update({k: str(v) for k, v in extra.pop("headers", {}).items()})  # type: ignore[attr-defined]
    body = {"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers, json=body, timeout=20)


@pytest.fixture()
def small_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "quotas.yaml").write_text(SMALL_QUOTAS)
    return bundle


@pytest.fixture()
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def person_us(tier: str = "enterprise") -> dict[str, object]:
    return {**PUBLIC_PERSON, "name": "Sam Enterprise", "tier": tier, "kyc_level": "kyb_verified"}


def test_public_tier_gets_exactly_its_rpm_then_429(gateway: Proc, admin: Admin) -> None:
    key = admin.customer_with_key(**PUBLIC_PERSON)
    statuses = [chat(gateway, key).status_code for _ in range(20)]
    assert statuses == [200] * 20
    refused = chat(gateway, key)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_exceeded"
    assert "requests_per_minute" in error["message"] and "20" in error["message"]


def test_agentic_on_a_tier_without_it_is_403_not_429(gateway: Proc, admin: Admin) -> None:
    key = admin.customer_with_key(**PUBLIC_PERSON)
    tools = [{"type": "function", "function": {"name": "run", "parameters": {"type": "object"}}}]
    response = chat(gateway, key, tools=tools)
    assert response.status_code == 403
    assert response.json()["error"]["code"].startswith("quota-not-offered")


def test_token_limit_holds_when_20_requests_race_for_the_last_tokens(
    gateway_factory: GatewayFactory,
    small_bundle: Path,
    standin_log: Callable[[], list[dict[str, object]]],
) -> None:
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(small_bundle)})
    key = Admin(gateway.url).customer_with_key(**person_us())
    # Each request reserves max_tokens 200 + its input estimate; the stand-in
    # holds every answer 800 ms, so all 20 are in flight together against a
    # 1000-token minute: at most 4 reservations fit.
    with ThreadPoolExecutor(20) as pool:
        responses = list(
            pool.map(
                lambda _: chat(gateway, key, max_tokens=200, headers={"x-standin-delay-ms": 800}),
                range(20),
            )
        )
    statuses = sorted(r.status_code for r in responses)
    allowed = statuses.count(200)
    assert set(statuses) <= {200, 429}, statuses
    assert 1 <= allowed <= 4, statuses
    assert len(standin_log()) == allowed


def test_stream_disconnect_releases_its_concurrency_slot(
    gateway_factory: GatewayFactory, small_bundle: Path
) -> None:
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(small_bundle)})
    key = Admin(gateway.url).customer_with_key(**person_us())
    tools = [{"type": "function", "function": {"name": "run", "parameters": {"type": "object"}}}]
    body = {
        "model": "haiku-lite",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools,
        "stream": True,
    }
    headers = {**XFF, "authorization": f"Bearer {key}"}
    slow = {**headers, "x-standin-chunks": "200", "x-standin-interval-ms": "50"}
    with httpx.Client(timeout=10) as client:
        with client.stream(
            "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=slow
        ) as r:
            assert r.status_code == 200
            # While the first stream is open, the single slot is taken.
            second = client.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
            assert second.status_code == 429, second.text
            assert "concurrent_streams" in second.json()["error"]["message"]
            for _ in r.iter_raw():
                break
        # Disconnected: the slot comes back.
        deadline = time.monotonic() + 3
        status = 429
        while status == 429 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = client.post(
                f"{gateway.url}/v1/chat/completions", json=body, headers=headers
            ).status_code
        assert status == 200


def test_a_cut_stream_is_charged_at_least_its_reservation(
    gateway_factory: GatewayFactory, small_bundle: Path
) -> None:
    # A stream whose client leaves before the last chunk never delivers its
    # usage; releasing the reservation then made every cut stream free.
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(small_bundle)})
    key = Admin(gateway.url).customer_with_key(**person_us())
    body = {"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 300, "stream": True}
    slow = {**XFF, "authorization": f"Bearer {key}",
            "x-standin-chunks": "100", "x-standin-interval-ms": "20"}
    with httpx.Client(timeout=10) as client:
        for _ in range(3):  # ~3 x 301 tokens of a 1000-token minute
            with client.stream("POST", f"{gateway.url}/v1/chat/completions", json=body,
                               headers=slow) as r:
                assert r.status_code == 200
                for _ in r.iter_raw():
                    break  # first chunk read, then the client goes away
        time.sleep(0.5)  # the gateway settles once it sees the disconnect
        fourth = client.post(f"{gateway.url}/v1/chat/completions",
                             json={**body, "stream": False}, headers=slow)
    assert fourth.status_code == 429, fourth.text
    assert "tokens_per_minute" in fourth.json()["error"]["message"]


def test_several_answers_reserve_max_tokens_for_each(
    gateway_factory: GatewayFactory, small_bundle: Path
) -> None:
    """``n`` (and ``best_of``, and a list of prompts on /v1/completions) asks the
    upstream for several answers of up to max_tokens each: one request with
    n=8 could generate eight times its reservation, so parallel ones overdrew
    a token window by that much before they settled."""
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(small_bundle)})
    key = Admin(gateway.url).customer_with_key(**person_us())
    headers = {**XFF, "authorization": f"Bearer {key}"}
    one = chat(gateway, key, max_tokens=100)
    assert one.status_code == 200
    spent = 1000 - int(one.headers["x-ratelimit-remaining-tokens"])  # 100 + input
    three = chat(gateway, key, max_tokens=100, n=3)
    assert three.status_code == 200
    remaining = int(three.headers["x-ratelimit-remaining-tokens"])
    # The first request settled to the stand-in's usage (19 tokens); this one
    # holds 3 x 100 + input until it settles.
    assert remaining <= 1000 - 19 - 300 - (spent - 100), three.headers
    refused = chat(gateway, key, max_tokens=300, n=4)  # 1200 > the 1000-token minute
    assert refused.status_code == 429, refused.text
    assert "needs 12" in refused.json()["error"]["message"]
    for body in ({"prompt": ["a", "b", "c", "d"], "max_tokens": 300},
                 {"prompt": "a", "max_tokens": 300, "n": 1, "best_of": 4}):
        completions = httpx.post(f"{gateway.url}/v1/completions", headers=headers,
                                 json={"model": "haiku-lite", **body}, timeout=20)
        assert completions.status_code == 429, (body, completions.text)
    bad = chat(gateway, key, n=0)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "n"


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_cache_tokens_are_charged(
    gateway_factory: GatewayFactory, small_bundle: Path, stream: bool
) -> None:
    """Anthropic reports prompt tokens read from (or written to) its cache
    apart from ``input_tokens``; the model read them all the same. Settling to
    ``input_tokens`` alone let a client that marks its long context
    ``cache_control`` send it again and again for a few tokens each."""
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(small_bundle)})
    key = Admin(gateway.url).customer_with_key(**person_us())
    headers = {**XFF, "x-api-key": key, "anthropic-version": "2023-06-01"}
    body = {"model": "haiku-lite", "max_tokens": 50, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=gateway.url, timeout=20) as client:
        cached = client.post("/v1/messages", json=body,
                             headers={**headers, "x-standin-cache-read-tokens": "800"})
        assert cached.status_code == 200
        time.sleep(0.3)  # settled once the answer is sent
        # 12 input + 800 cached + the output, of a 1000-token minute: this one
        # (300 + input) no longer fits.
        refused = client.post("/v1/messages", json={**body, "max_tokens": 300, "stream": False},
                              headers=headers)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["type"] == "rate_limit_error"


def test_count_tokens_does_not_spend_the_token_quota(
    gateway_factory: GatewayFactory, small_bundle: Path
) -> None:
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(small_bundle)})
    key = Admin(gateway.url).customer_with_key(**person_us())
    body = {"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]}
    headers = {**XFF, "x-api-key": key, "anthropic-version": "2023-06-01"}
    responses = [
        httpx.post(f"{gateway.url}/v1/messages/count_tokens", json=body, headers=headers,
                   timeout=10)
        for _ in range(15)  # each held default_max_tokens (100) of a 1000-token minute
    ]
    assert [r.status_code for r in responses] == [200] * 15
    assert int(responses[-1].headers["x-ratelimit-remaining-tokens"]) >= 990


@pytest.mark.redis
def test_two_replicas_on_one_redis_allow_exactly_the_limit(
    gateway_factory: GatewayFactory, small_bundle: Path, redis: RedisServer, tmp_path: Path
) -> None:
    env = {"GATEWAY_POLICY_DIR": str(small_bundle), "GATEWAY_REDIS_URL": redis.url}
    replicas = []
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        db = f"sqlite+aiosqlite:///{home / 'gateway.db'}"
        replicas.append(gateway_factory(env={**env, "GATEWAY_DATABASE_URL": db}))
    # Separate databases, one customer id: the quota buckets are keyed by customer.
    keys = []
    for replica in replicas:
        admin = Admin(replica.url)
        admin.customer(id="shared-public", **PUBLIC_PERSON)
        keys.append(admin.key("shared-public"))
    statuses = [chat(replicas[i % 2], keys[i % 2]).status_code for i in range(10)]
    assert statuses.count(200) == 5, statuses
    assert statuses.count(429) == 5, statuses


@pytest.mark.redis
def test_redis_down_fails_closed_and_recovers_without_restart(
    gateway_factory: GatewayFactory,
    redis: RedisServer,
    standin_log: Callable[[], list[dict[str, object]]],
) -> None:
    gateway = gateway_factory(env={"GATEWAY_REDIS_URL": redis.url})
    key = Admin(gateway.url).customer_with_key(**PUBLIC_PERSON)
    assert chat(gateway, key).status_code == 200
    forwarded_before = len(standin_log())
    redis.kill()
    for _ in range(3):
        response = chat(gateway, key)
        assert response.status_code == 503, response.text
        assert response.headers["x-gateway-decision-id"]
    assert len(standin_log()) == forwarded_before, "a request reached the upstream unmetered"
    redis.restart()
    deadline = time.monotonic() + 10
    status = 503
    while status == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        status = chat(gateway, key).status_code
    assert status == 200


@pytest.mark.redis
def test_a_restarted_redis_serves_the_next_burst(
    gateway_factory: GatewayFactory, redis: RedisServer
) -> None:
    # Every pooled connection dies with the server; each one's first use after
    # the restart was a 503, so a burst right after recovery was mostly 503s.
    gateway = gateway_factory(env={"GATEWAY_REDIS_URL": redis.url})
    key = Admin(gateway.url).customer_with_key(**person_us())
    slow = {"headers": {"x-standin-delay-ms": 300}}
    with ThreadPoolExecutor(20) as pool:
        warm = list(pool.map(lambda _: chat(gateway, key, **slow).status_code, range(20)))
        assert warm == [200] * 20  # 20 requests at once: ~20 pooled connections
        redis.restart()
        time.sleep(1)
        burst = list(pool.map(lambda _: chat(gateway, key).status_code, range(20)))
    assert burst == [200] * 20, burst



def test_a_request_that_can_never_fit_its_token_limit_is_not_retried_by_the_sdks(
    gateway_factory: GatewayFactory, small_bundle: Path
) -> None:
    """A request reserving more tokens than its window holds can never be
    admitted, so a retry only spends the caller's time and the gateway's
    records: its 429 says ``x-should-retry: false``, which the OpenAI and
    Anthropic SDKs obey. A 429 that time will cure stays retryable."""
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(small_bundle)})
    key = Admin(gateway.url).customer_with_key(**person_us())
    attempts: list[int] = []

    def count(response: Any) -> None:  # httpx's for openai, httpx2's for anthropic
        attempts.append(response.status_code)

    hooks = {"response": [count]}
    oai = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=2,
                        default_headers=XFF,
                        http_client=openai.DefaultHttpxClient(event_hooks=hooks))
    with pytest.raises(openai.RateLimitError) as too_big:
        oai.chat.completions.create(model="haiku-lite", max_tokens=2000,
                                    messages=[{"role": "user", "content": "hi"}])
    assert attempts == [429], attempts
    assert too_big.value.response.headers["x-should-retry"] == "false"
    attempts.clear()
    claude = anthropic.Anthropic(
        base_url=gateway.url, api_key=key, max_retries=2, default_headers=XFF,
        http_client=anthropic.DefaultHttpxClient(event_hooks=hooks))
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="haiku-lite", max_tokens=2000,
                               messages=[{"role": "user", "content": "hi"}])
    assert attempts == [429], attempts
    # A spent request window is a refusal a wait cures: retryable as before.
    public = Admin(gateway.url).customer_with_key(**PUBLIC_PERSON)
    for _ in range(5):
        assert chat(gateway, public).status_code == 200
    spent = chat(gateway, public)
    assert spent.status_code == 429 and "x-should-retry" not in spent.headers, spent.headers
