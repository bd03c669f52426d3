"""Where a request comes from, through the real server: what X-Forwarded-For a
trusted proxy sends, and what a .mmdb says (probe findings on the geo stage)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, GatewayFactory
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

ONLY_LOOPBACK = {"GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"}
KP_IP = "175.45.176.1"  # North Korea in the offline RIR data
# The same host written as IPv6 transition addresses (tests/geo/test_addresses.py).
KP_AS_IPV6 = [
    "2002:af2d:b001::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:50d2:4ffe",  # Teredo
    "::af2d:b001",  # IPv4-compatible (::175.45.176.1)
    "64:ff9b::af2d:b001",  # NAT64 well-known prefix
]


def chat(gateway: Proc, key: str, forwarded_for: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": forwarded_for},
        json={"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def record_of(admin: Admin, response: httpx.Response) -> dict[str, object]:
    found = admin.http.get(f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}")
    assert found.status_code == 200, found.text
    record: dict[str, object] = found.json()
    return record


def test_ipv6_transition_addresses_are_located_on_their_ipv4_host(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(env=ONLY_LOOPBACK)
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    assert chat(gateway, key, KP_IP).status_code == 403
    for address in KP_AS_IPV6:
        response = chat(gateway, key, address)
        assert response.status_code == 403, (address, response.text)
        assert response.json()["error"]["code"] == "sanctioned-origin", address
        record = record_of(admin, response)
        # Recorded as received, located where the IPv4 host is.
        assert record["client_ip"] == address and record["origin_country"] == "KP", record
