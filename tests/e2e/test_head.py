"""HEAD is answered wherever GET is (RFC 9110 section 9.3.2): the GET's status
and headers, no content. ``HEAD /v1/models`` is the same authorization decision
as the GET and is recorded like it."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP
from tests.support.processes import ADMIN_TOKEN, Admin, Proc

pytestmark = pytest.mark.e2e
VARYING = {"date", "x-gateway-decision-id", "x-request-id", "request-id", "content-length",
           "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
           "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"}
"""Headers that differ between two answers (the length is compared on its own; a
refusal's request id is its decision id; a HEAD counts one request as its GET
does, so the quota left and its reset move)."""


def _raw_head(gateway: Proc, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """HEAD over a bare socket, read to the close: what the gateway really sent."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        lines = [f"HEAD {path} HTTP/1.1", f"host: 127.0.0.1:{gateway.port}", "connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


def _same_as_get(gateway: Proc, path: str, headers: dict[str, str]) -> httpx.Response:
    got = httpx.get(f"{gateway.url}{path}", headers=headers, timeout=10)
    head = httpx.head(f"{gateway.url}{path}", headers=headers, timeout=10)
    assert head.status_code == got.status_code, (path, head.status_code, got.text)
    assert head.content == b""
    assert head.headers["content-length"] == str(len(got.content)), path
    assert {k: v for k, v in head.headers.items() if k not in VARYING} == {
        k: v for k, v in got.headers.items() if k not in VARYING
    }, path
    status, sent = _raw_head(gateway, path, headers)
    assert (status, sent) == (got.status_code, b""), (path, sent[:200])
    return head


def test_head_of_the_model_list_is_the_get_without_content(gateway: Proc, admin: Admin) -> None:
    customer_id = str(admin.customer(**US_ENTERPRISE)["id"])
    key = admin.key(customer_id)
    for shape in ({}, {"anthropic-version": "2023-06-01"}):
        headers = {"authorization": f"Bearer {key}", "x-forwarded-for": US_IP, **shape}
        head = _same_as_get(gateway, "/v1/models", headers)
        assert head.headers["x-gateway-policy-version"]
        record = admin.http.get(f"/admin/v1/decisions/{head.headers['x-gateway-decision-id']}")
        doc = record.json()
        assert (doc["decision"], doc["status"], doc["endpoint"]) == ("allow", 200, "/v1/models")
        assert doc["rule_ids"] == ["models-list"] and doc["customer_id"] == customer_id, doc
    # Refusals too: the GET's 401, without its body.
    refused = _same_as_get(gateway, "/v1/models", {"x-forwarded-for": US_IP})
    assert refused.status_code == 401
    # Where GET is not allowed, neither is HEAD; where GET is, Allow says HEAD too.
    not_allowed = httpx.head(f"{gateway.url}/v1/chat/completions", timeout=10)
    assert not_allowed.status_code == 405 and not_allowed.headers["allow"] == "POST"
    assert not_allowed.content == b""
    deleted = httpx.delete(f"{gateway.url}/v1/models", timeout=10)
    assert deleted.status_code == 405 and deleted.headers["allow"] == "GET, HEAD"


def test_head_of_the_other_get_routes(gateway: Proc) -> None:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    for path, headers in [("/healthz", {}), ("/readyz", {}), ("/admin/v1/policy", admin),
                          ("/admin/v1/customers", admin), ("/admin/v1/policy", {})]:  # fmt: skip
        _same_as_get(gateway, path, headers)
    # HEAD where only POST is served stays a 405.
    reload = httpx.head(f"{gateway.url}/admin/v1/policy/reload", headers=admin, timeout=10)
    assert reload.status_code == 405 and reload.content == b""
