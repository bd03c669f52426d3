"""The admin API reads no body larger than ``GATEWAY_MAX_BODY_BYTES``.

Every admin ``POST``/``PATCH``/``DELETE`` body was buffered whole (to check it
for NUL characters and non-finite numbers) before any route, and so before
any credential or signature, was looked at: one unauthenticated 300 MB POST to
``/admin/v1/kyc/webhook`` (or to any ``/admin/`` path) took the gateway from
105 MB to 287 MB of memory, and a few in parallel could take it down. The
proxied API has refused bodies over the limit with 413 from the start.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.e2e.conftest import GatewayFactory
from tests.e2e.test_body_timeout import TIMEOUT, _slow_post
from tests.support.processes import ADMIN_TOKEN

pytestmark = pytest.mark.e2e
LIMIT = 64 * 1024
SIGNED = {"x-gateway-kyc-signature": "t=1,v1=00", "content-type": "application/json"}


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        part = min(8192, total - sent)
        sent += part
        yield b" " * part


def test_an_admin_body_over_the_limit_is_413_before_any_route_reads_it(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(env={"GATEWAY_MAX_BODY_BYTES": str(LIMIT),
                                   "GATEWAY_KYC_WEBHOOK_SECRET": "w" * 32})  # fmt: skip
    too_big = b" " * (LIMIT + 1)
    with httpx.Client(base_url=gateway.url, timeout=20) as client:
        # Unauthenticated, declared length: refused without reading it.
        webhook = client.post("/admin/v1/kyc/webhook", content=too_big, headers=SIGNED)
        assert webhook.status_code == 413, webhook.text
        assert "detail" in webhook.json()
        nowhere = client.post("/admin/v1/no-such-route", content=too_big)
        assert nowhere.status_code == 413, nowhere.text
        # No declared length (chunked): refused once the limit is passed.
        chunked = client.post("/admin/v1/kyc/webhook", content=_chunks(LIMIT * 4),
                              headers=SIGNED)  # fmt: skip
        assert chunked.status_code == 413, chunked.text
        # A body within the limit still reaches its route.
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        created = client.post("/admin/v1/customers", headers=admin,
                              json={"name": "Within Limit", "kind": "individual"})  # fmt: skip
        assert created.status_code == 201, created.text


def test_an_admin_body_that_does_not_arrive_in_time_is_408(
    gateway_factory: GatewayFactory,
) -> None:
    """Within the size limit, a body dripped a byte at a time (or never sent)
    held its connection, task and buffer for as long as the client liked: the
    proxied API's GATEWAY_BODY_READ_TIMEOUT_SECONDS bounds the admin API's too."""
    gateway = gateway_factory(env={"GATEWAY_BODY_READ_TIMEOUT_SECONDS": str(TIMEOUT),
                                   "GATEWAY_KYC_WEBHOOK_SECRET": "w" * 32})  # fmt: skip
    for drip_every in (0.5, None):
        answer = _slow_post(gateway, "/admin/v1/kyc/webhook", SIGNED, 200, drip_every)
        assert answer.status == 408, answer
        assert answer.seconds < TIMEOUT + 2.5, answer.seconds
        assert "detail" in orjson.loads(answer.body)
    created = httpx.post(f"{gateway.url}/admin/v1/customers", timeout=10,
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                         json={"name": "Still Served", "kind": "individual"})  # fmt: skip
    assert created.status_code == 201, created.text
