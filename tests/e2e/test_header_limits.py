"""Headers a client writes cannot grow the gateway (probe: XFF memory exhaustion).

``X-Forwarded-For`` is read before authentication. The locate stage cached
its answer keyed on the raw header, even from peers whose header it never
reads, and nothing bounded the header's size: unique 1 MB headers from anyone
who could reach the port grew a worker by hundreds of MB.
"""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

CHAT = {"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]}
NO_KEY = {"authorization": "Bearer gk_nope_nope"}


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _record(admin: Admin, response: httpx.Response) -> dict[str, object]:
    found = admin.http.get(f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}")
    assert found.status_code == 200, found.text
    record: dict[str, object] = found.json()
    return record


def test_an_oversized_forwarded_for_is_a_recorded_431(gateway: Proc, admin: Admin) -> None:
    hops = ", ".join(f"10.0.{i // 250}.{i % 250}" for i in range(1000))  # ~11 KB
    assert len(hops) > 8192
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT,
                          headers={**NO_KEY, "x-forwarded-for": hops}, timeout=10)
    assert response.status_code == 431, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "X-Forwarded-For" in error["message"] and "8192" in error["message"]
    record = _record(admin, response)
    assert record["status"] == 431 and record["decision"] == "deny"
    assert record["rule_ids"] == ["request-headers-too-large"]
    # The header that would name the client is the one refused: the peer is recorded.
    assert record["client_ip"] == "127.0.0.1" and record["origin_country"] is None

    # Every line counts, together; the Anthropic shape for /v1/messages, and /v1/models.
    lines = [("x-forwarded-for", "9" * 4500), ("x-forwarded-for", "1" * 4500),
             ("x-forwarded-for", "8.8.8.8")]  # each line under the bound, not together
    response = httpx.post(f"{gateway.url}/v1/messages", json=CHAT, timeout=10,
                          headers=[*NO_KEY.items(), *lines])
    assert response.status_code == 431, response.text
    assert response.json()["error"]["type"] == "request_too_large"
    assert _record(admin, response)["rule_ids"] == ["request-headers-too-large"]
    response = httpx.get(f"{gateway.url}/v1/models", timeout=10,
                         headers={**NO_KEY, "x-forwarded-for": hops})
    assert response.status_code == 431
    assert _record(admin, response)["status"] == 431


def test_oversized_headers_as_a_whole_are_refused_everywhere(gateway: Proc, admin: Admin) -> None:
    padding = [(f"x-pad-{i}", "p" * 7000) for i in range(5)]  # 35 KB
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=10,
                          headers=[*NO_KEY.items(), ("x-forwarded-for", "8.8.8.8"), *padding])
    assert response.status_code == 431, response.text
    assert "request headers" in response.json()["error"]["message"]
    assert _record(admin, response)["rule_ids"] == ["request-headers-too-large"]
    # Outside /v1/* too (the admin API reads X-Forwarded-For for its lockout).
    response = admin.http.get("/admin/v1/customers", headers={"x-forwarded-for": "1" * 9000})
    assert response.status_code == 431
    assert "X-Forwarded-For" in response.json()["detail"]
    # Within the bounds nothing changes: a 7 KB header is read (and refused for the key).
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=10,
                          headers={**NO_KEY, "x-forwarded-for": "1" * 7000})
    assert response.status_code == 401


def test_unique_forwarded_for_headers_do_not_grow_the_worker(
    gateway_factory: GatewayFactory,
) -> None:
    # No trusted proxies: the header is never read, so it must not be kept either.
    # (NORMAL: a commit per batch without fsync, for speed; durability is not tested here.)
    # The unauthenticated-refusal limit off: every refusal is recorded, as
    # before it existed (past it, a 429 keeps even less).
    gateway = gateway_factory(
        env={"GATEWAY_TRUSTED_PROXIES": "", "GATEWAY_SQLITE_SYNCHRONOUS": "NORMAL",
             "GATEWAY_UNAUTHENTICATED_LIMIT": "0"}
    )
    pid = gateway.proc.pid  # `gateway serve` with one worker execs into it

    async def flood(count: int) -> dict[int, int]:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30, limits=limits) as client:
            gate = asyncio.Semaphore(16)

            async def one() -> int:
                # Unique and just under the 8 KB bound: every one was a new cache key.
                header = secrets.token_hex(8) + "1" * 8100
                async with gate:
                    response = await client.post("/v1/chat/completions", json={},
                                                 headers={**NO_KEY, "x-forwarded-for": header})
                return response.status_code

            statuses = await asyncio.gather(*(one() for _ in range(count)))
        return {status: statuses.count(status) for status in set(statuses)}

    asyncio.run(flood(100))  # warm up: pools, audit batches, allocator arenas
    before = _rss_mb(pid)
    assert asyncio.run(flood(1000)) == {401: 1000}
    grown = _rss_mb(pid) - before
    # 1,000 x 8 KB kept would be 8 MB and more; measured without: under 1 MB.
    assert grown < 4, f"worker RSS grew {grown:.1f} MB over 1,000 unique headers"
