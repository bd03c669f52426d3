"""Creates of one caller-chosen id sent at once, against a real gateway on
SQLite and on PostgreSQL: one is created (201) and every other is a 409 in
the admin API's shape. Each create found the id free, then all but one hit
the primary key at their INSERT: an integrity error, answered 500.

The KYC webhook's event id is chosen by the caller too: the same event
delivered several times at once is applied once and every other delivery
is a duplicate (200) or, with another body, a 409; never a 500.

Keys, admin tokens and legal holds take no caller-chosen id (the gateway
mints them), so two creates of those never collide.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.kyc.signatures import sign
from tests.ops.helpers import TRUSTED, US_ENTERPRISE
from tests.support.postgres_server import PostgresServer, migrated_database
from tests.support.processes import ADMIN_TOKEN, GatewayConfig, Proc, start_gateway

pytestmark = pytest.mark.e2e
AT_ONCE = 8
ROUNDS = 4
WEBHOOK_SECRET = "w" * 32


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def gateway(request: pytest.FixtureRequest, tmp_path: Path, standin: Proc) -> Iterator[Proc]:
    env = {**TRUSTED, "GATEWAY_KYC_WEBHOOK_SECRET": WEBHOOK_SECRET}
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        env["GATEWAY_DATABASE_URL"] = migrated_database(server)
    proc = start_gateway(GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env))
    yield proc
    proc.stop()


def _shown(responses: list[httpx.Response]) -> list[tuple[int, str]]:
    return [(r.status_code, r.text[:300]) for r in responses]


async def _at_once(
    gateway: Proc, path: str, bodies: list[bytes], headers: list[dict[str, str]]
) -> list[httpx.Response]:
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=auth, timeout=60) as client:
        sends = [client.post(path, content=body, headers=extra)
                 for body, extra in zip(bodies, headers, strict=True)]  # fmt: skip
        return list(await asyncio.gather(*sends))


async def test_creates_of_one_id_at_once_give_one_customer_and_409s(gateway: Proc) -> None:
    for round_ in range(ROUNDS):
        cid = f"cus_race_{round_}"
        body = json.dumps({**US_ENTERPRISE, "id": cid}).encode()
        responses = await _at_once(gateway, "/admin/v1/customers", [body] * AT_ONCE,
                                   [{}] * AT_ONCE)  # fmt: skip
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * (AT_ONCE - 1), _shown(responses)
        for r in responses:
            if r.status_code == 409:
                assert r.json() == {"detail": f"customer {cid} already exists"}
    listed = httpx.get(f"{gateway.url}/admin/v1/customers", timeout=10,
                       headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()  # fmt: skip
    assert sorted(c["id"] for c in listed["items"]) == [f"cus_race_{i}" for i in range(ROUNDS)]


def _signed(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    at = int(time.time())
    return body, {"x-gateway-kyc-signature": f"t={at},v1={sign(WEBHOOK_SECRET, at, body)}"}


async def test_one_webhook_event_delivered_at_once_is_applied_once(gateway: Proc) -> None:
    created = httpx.post(f"{gateway.url}/admin/v1/customers", timeout=10,
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                         json={**US_ENTERPRISE, "id": "cus_kyc_race"})  # fmt: skip
    assert created.status_code == 201, created.text
    for round_ in range(ROUNDS):
        event = {"id": f"evt_race_{round_}", "customer_id": "cus_kyc_race",
                 "kyc_level": "kyb_verified"}  # fmt: skip
        other = {**event, "kyc_level": "email_verified"}
        sent = [_signed(event if i % 2 == 0 else other) for i in range(AT_ONCE)]
        responses = await _at_once(gateway, "/admin/v1/kyc/webhook", [b for b, _ in sent],
                                   [h for _, h in sent])  # fmt: skip
        assert all(r.status_code in (200, 409) for r in responses), _shown(responses)
        applied = [r.json() for r in responses
                   if r.status_code == 200 and not r.json()["duplicate"]]  # fmt: skip
        assert len(applied) == 1, _shown(responses)
        winner = applied[0]["customer"]["kyc_level"]
        for r in responses:
            if r.status_code == 409:  # the other body than the one applied
                assert r.json() == {"detail": f"event id {event['id']!r} was already used "
                                              "for other content"}  # fmt: skip
        assert len([r for r in responses if r.status_code == 409]) == AT_ONCE // 2, winner


async def _patch_at_once(
    gateway: Proc, cid: str, bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=auth, timeout=60) as client:
        return list(await asyncio.gather(
            *(client.patch(f"/admin/v1/customers/{cid}", json=body) for body in bodies)))


async def test_updates_of_one_customer_at_once_all_apply(gateway: Proc) -> None:
    """Concurrent PATCHes and webhook events on one customer: each is applied
    (200), none is lost to the write counter (customers.version) as a 500."""
    created = httpx.post(f"{gateway.url}/admin/v1/customers", timeout=10,
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                         json={**US_ENTERPRISE, "id": "cus_update_race"})  # fmt: skip
    assert created.status_code == 201, created.text
    for round_ in range(ROUNDS):
        bodies = [{"attributes": [f"round{round_}_writer{i}"]} for i in range(AT_ONCE)]
        responses = await _patch_at_once(gateway, "cus_update_race", bodies)
        assert [r.status_code for r in responses] == [200] * AT_ONCE, _shown(responses)
        sent = [_signed({"id": f"evt_upd_{round_}_{i}", "customer_id": "cus_update_race",
                         "kyc_level": "kyb_verified" if i % 2 else "email_verified"})
                for i in range(AT_ONCE)]  # fmt: skip
        hooks = await _at_once(gateway, "/admin/v1/kyc/webhook", [b for b, _ in sent],
                               [h for _, h in sent])  # fmt: skip
        assert [r.status_code for r in hooks] == [200] * AT_ONCE, _shown(hooks)
