"""Refusals the route or the body size decides (404, 405, 413) are still
attributed to the caller when its credential is valid: the audit log must say
*who* probed an unknown route or sent an oversized body, not only that someone
did. A bad or missing credential does not turn them into 401s (pipeline.py
says why); such records carry no customer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import Admin

pytestmark = pytest.mark.e2e
LIMIT = 4096
BIG = b'{"model": "haiku-lite", "x": "' + b"a" * (LIMIT + 1000) + b'"}'


def _chunked(body: bytes) -> Iterator[bytes]:
    # No Content-Length: the limit is passed while reading, not announced.
    half = len(body) // 2
    yield body[:half]
    yield body[half:]


def _cases() -> list[tuple[str, str, dict[str, str], object, int]]:
    return [
        ("POST", "/v1/nope", {}, b"{}", 404),
        ("POST", "/V1/chat/completions", {}, b"{}", 404),
        ("GET", "/v1/chat/completions", {}, None, 405),
        ("DELETE", "/v1/models", {"anthropic-version": "2023-06-01"}, None, 405),
        ("POST", "/v1/chat/completions", {"content-type": "application/json"}, BIG, 413),
        ("POST", "/v1/messages", {"content-type": "application/json"}, _chunked(BIG), 413),
    ]


def _decision(admin: Admin, response: httpx.Response) -> dict[str, object]:
    decision_id = response.headers["x-gateway-decision-id"]
    found = admin.http.get(f"/admin/v1/decisions/{decision_id}")
    assert found.status_code == 200, found.text
    record: dict[str, object] = found.json()
    return record


def test_route_and_size_refusals_with_a_valid_key_name_the_customer(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(env={"GATEWAY_MAX_BODY_BYTES": str(LIMIT)})
    admin = Admin(gateway.url)
    customer = admin.customer(**US_ENTERPRISE)
    customer_id = str(customer["id"])
    key = admin.key(customer_id)
    key_id = key.split("_")[1]
    for header in ("authorization", "x-api-key"):
        credential = f"Bearer {key}" if header == "authorization" else key
        for method, path, extra, body, status in _cases():
            headers = {"x-forwarded-for": US_IP, header: credential, **extra}
            response = httpx.request(method, f"{gateway.url}{path}", headers=headers,
                                     content=body, timeout=10)  # type: ignore[arg-type]
            assert response.status_code == status, (method, path, response.text)
            record = _decision(admin, response)
            assert record["status"] == status and record["decision"] == "deny", record
            assert record["customer_id"] == customer_id, (method, path, status, record)
            assert record["key_id"] == key_id, (method, path, status, record)
            assert record["residence"] == "US" and record["kyc_level"] == "kyb_verified"
            assert record["origin_country"] == "US"


@pytest.mark.parametrize("credential", [None, "gk_0123456789abcdef_wrongsecret", "not-a-key"])
def test_without_a_valid_credential_they_stay_what_they_were(
    gateway_factory: GatewayFactory, credential: str | None
) -> None:
    gateway = gateway_factory(env={"GATEWAY_MAX_BODY_BYTES": str(LIMIT)})
    admin = Admin(gateway.url)
    admin.customer_with_key(**US_ENTERPRISE)
    for method, path, extra, body, status in _cases():
        headers = {"x-forwarded-for": US_IP, **extra}
        if credential is not None:
            headers["authorization"] = f"Bearer {credential}"
        response = httpx.request(method, f"{gateway.url}{path}", headers=headers,
                                 content=body, timeout=10)  # type: ignore[arg-type]
        assert response.status_code == status, (method, path, response.text)
        record = _decision(admin, response)
        assert record["status"] == status, record
        assert record["customer_id"] is None and record["key_id"] is None, record
