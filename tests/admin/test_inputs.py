"""Input the database cannot store, or JSON cannot carry, is a 4xx
``{"detail": ...}`` on every admin route, never a 500.

PostgreSQL refuses NUL (U+0000) in text (asyncpg: "invalid byte sequence for
encoding UTF8: 0x00"), so a NUL in a name, a path id or a filter was a 500 there
(SQLite stores it, and so it is refused on both, for one behaviour). ``NaN``
and ``Infinity`` (and ``1e999``) parse as floats, fail validation, and then
the 422 itself could not be rendered as JSON: a 500 on any database.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gateway.admin.routers import include_admin_routers
from gateway.identity.identifier import GatewayIdentifier
from gateway.kyc.signatures import sign
from tests.admin.conftest import BOOTSTRAP, WEBHOOK_SECRET
from tests.support import identity_app as support
from tests.support.identity_app import Clock, make_db, make_settings
from tests.support.postgres_server import PostgresServer, postgres_fixture

A = "/admin/v1"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    yield from postgres_fixture()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    overrides: dict[str, object] = {"admin_token": BOOTSTRAP, "kyc_webhook_secret": WEBHOOK_SECRET}
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        overrides["database_url"] = server.create_database()
    settings = make_settings(tmp_path, **overrides)
    engine, sessions = await make_db(settings)
    identifier = GatewayIdentifier(sessions, settings.cache_ttl_seconds)
    services = support.TestServices(settings, engine, sessions, identifier, Clock())
    app = FastAPI()
    app.state.services = services
    include_admin_routers(app)  # the production wiring
    # raise_app_exceptions=False: a 500 is an answer to assert on, not a test crash.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"authorization": f"Bearer {BOOTSTRAP}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gw", headers=headers) as c:
        created = await c.post(f"{A}/customers", json={"id": "c1", "name": "Real Customer"})
        assert created.status_code == 201, created.text
        yield c
    await engine.dispose()


def _refused(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", response.text
    assert response.json()["detail"], response.text


NUL_REQUESTS: list[tuple[str, str, dict[str, object]]] = [
    ("POST", "/customers", {"json": {"name": "Nul\u0000Name"}}),
    ("POST", "/customers", {"json": {"name": "x", "attributes": ["a\u0000"]}}),
    ("PATCH", "/customers/c1", {"json": {"name": "Renamed\u0000"}}),
    ("GET", "/customers/a%00b", {}),
    ("PATCH", "/customers/a%00b", {"json": {"name": "x"}}),
    ("GET", "/customers/a%00b/history", {}),
    ("POST", "/customers/a%00b/keys", {"json": {}}),
    ("POST", "/customers/c1/keys", {"json": {"name": "ci\u0000"}}),
    ("DELETE", "/keys/a%00b", {}),
    ("POST", "/tokens", {"json": {"role": "auditor", "name": "bob\u0000"}}),
    ("DELETE", "/tokens/a%00b", {}),
    ("GET", "/customers", {"params": {"cursor": base64.urlsafe_b64encode(b"a\0").decode()}}),
    ("GET", "/decisions", {"params": {"customer_id": "a\u0000b"}}),
    ("GET", "/decisions", {"params": {"model": "x\u0000"}}),
    ("GET", "/decisions", {"params": {"rule_id": "r\u0000"}}),
    ("GET", "/decisions", {"params": {"cursor": "0\u0000"}}),
    ("GET", "/decisions/export", {"params": {"customer_id": "a\u0000b"}}),
    ("GET", "/decisions/a%00b", {}),
    ("GET", "/admin-actions", {"params": {"target_id": "a\u0000"}}),
    ("GET", "/customers/a%00b/usage", {}),
    ("POST", "/audit/holds", {"json": {"reason": "case\u0000", "customer_id": "c1"}}),
    ("POST", "/audit/holds", {"json": {"reason": "case 7", "customer_id": "a\u0000"}}),
]


@pytest.mark.parametrize(("method", "path", "kw"), NUL_REQUESTS)
async def test_nul_characters_are_refused(
    client: httpx.AsyncClient, method: str, path: str, kw: dict[str, object]
) -> None:
    _refused(await client.request(method, A + path, **kw))  # type: ignore[arg-type]


async def test_a_nul_in_a_signed_kyc_event_is_refused(client: httpx.AsyncClient) -> None:
    ts = int(Clock()().timestamp())
    bodies = [
        b'{"id": "e\\u0000", "customer_id": "c1", "kyc_level": "id_verified"}',
        b'{"id": "e1", "customer_id": "c\\u0000", "kyc_level": "id_verified"}',
        b'{"id": "e2", "customer_id": "c1", "kyc_level": "id_verified", "extra": NaN}',
    ]
    for body in bodies:
        header = f"t={ts},v1={sign(WEBHOOK_SECRET, ts, body)}"
        r = await client.post(f"{A}/kyc/webhook", content=body,
                              headers={"x-gateway-kyc-signature": header})  # fmt: skip
        _refused(r)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_numbers_are_a_422(client: httpx.AsyncClient, number: str) -> None:
    body = '{"name": "Owned Ltd", "ownership": [{"country": "CN", "percent": %s}]}'
    headers = {"content-type": "application/json"}
    r = await client.post(f"{A}/customers", content=body % number, headers=headers)
    _refused(r)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "ownership", 0, "percent"], r.text
    r = await client.patch(f"{A}/customers/c1", content='{"ownership": [{"country": "CN", '
                           f'"percent": {number}}}]}}', headers=headers)  # fmt: skip
    _refused(r)


async def test_ordinary_input_still_passes(client: httpx.AsyncClient) -> None:
    # The guard reads JSON bodies to look for NUL and non-finite numbers: what
    # it passes on must reach the routes unchanged, signed bodies included.
    name = 'Zoë \\ "Ünïcode" \u2603 \\u0000'  # a backslash-u in a name is not a NUL
    owners = [{"country": "DE", "percent": 12.5}]
    r = await client.post(f"{A}/customers", json={"name": name, "ownership": owners})
    assert r.status_code == 201 and r.json()["name"] == name
    assert r.json()["ownership"][0]["percent"] == 12.5
    r = await client.get(f"{A}/decisions", params={"customer_id": "c1", "model": "haiku-lite"})
    assert r.status_code == 200, r.text
    r = await client.post(f"{A}/customers", content=b"{not json",
                          headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422  # FastAPI's own answer to a body that is not JSON


async def test_a_422_quoting_a_non_finite_number_renders() -> None:
    # However a NaN reaches validation, the 422 that quotes it is still JSON.
    from fastapi.exceptions import RequestValidationError

    from gateway.admin.routers import validation_failed

    error = {"type": "less_than_equal", "loc": ("body", "p"), "msg": "m", "input": float("nan")}
    response = await validation_failed(None, RequestValidationError([error]))  # type: ignore[arg-type]
    assert response.status_code == 422
    assert b'"input":"nan"' in response.body
