"""A request body must arrive whole within GATEWAY_BODY_READ_TIMEOUT_SECONDS.

Without a bound, a client that sends its headers and then one byte every half
second (slowloris), or nothing at all, holds a request, and what it holds, open
for as long as it likes. On expiry the gateway answers 408 in the client's API
shape, records the refusal like any other, and closes the connection.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
TIMEOUT = 1.0
GIVE_UP = 10.0
"""Longer than the bound plus the gateway's check interval (at most 1 s) and slack."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    """From the last header byte sent to the first answer byte."""
    closed: bool
    """The gateway closed the connection after answering."""


def _slow_post(gateway: Proc, path: str, headers: dict[str, str], declared: int,
               drip_every: float | None) -> Answer:  # fmt: skip
    """POST ``path`` declaring ``declared`` body bytes, then send one byte every
    ``drip_every`` seconds (never any when None) until the gateway answers."""
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=GIVE_UP)
    lines = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{gateway.port}",
             "content-type: application/json", f"content-length: {declared}"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    start = time.monotonic()
    received = b""
    first: float | None = None
    sent = 0
    closed = False
    try:
        while time.monotonic() - start < GIVE_UP:
            ready, _, _ = select.select([sock], [], [], drip_every or 0.1)
            if ready:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                first = first if first is not None else time.monotonic() - start
                received += chunk
            elif drip_every is not None and first is None and sent < declared - 1:
                sock.sendall(b"{" if sent == 0 else b" ")
                sent += 1
    finally:
        sock.close()
    assert first is not None, f"no answer within {GIVE_UP} s (sent {sent} body bytes)"
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {k.strip().lower(): v.strip()
              for k, _, v in (line.partition(":") for line in header_lines)}  # fmt: skip
    return Answer(int(status_line.split()[1]), parsed, body, first, closed)


def _record(admin: Admin, answer: Answer) -> dict[str, object]:
    found = admin.http.get(f"/admin/v1/decisions/{answer.headers['x-gateway-decision-id']}")
    assert found.status_code == 200, found.text
    record: dict[str, object] = found.json()
    return record


def test_a_dripped_body_is_cut_off_with_408_in_the_client_shape(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(env={"GATEWAY_BODY_READ_TIMEOUT_SECONDS": str(TIMEOUT)})
    admin = Admin(gateway.url)
    customer_id = str(admin.customer(**US_ENTERPRISE)["id"])
    key = admin.key(customer_id)
    credentials = {"x-forwarded-for": US_IP, "authorization": f"Bearer {key}"}
    cases = [
        # One byte every half second: each read makes progress, the whole never comes.
        ("/v1/chat/completions", 0.5, "openai"),
        # Headers, then nothing: the first read of the body never returns.
        ("/v1/messages", None, "anthropic"),
    ]
    for path, drip_every, api in cases:
        answer = _slow_post(gateway, path, credentials, 200, drip_every)
        assert answer.status == 408, (path, answer)
        assert answer.seconds < TIMEOUT + 2.5, (path, answer.seconds)
        doc = orjson.loads(answer.body)
        if api == "anthropic":
            assert doc["type"] == "error", doc
        assert doc["error"]["type"] == "invalid_request_error", doc
        assert "body" in doc["error"]["message"], doc
        # RFC 9110 15.5.9: the server closes rather than go on waiting.
        assert answer.headers.get("connection") == "close" and answer.closed, answer
        assert answer.headers["x-gateway-policy-version"]
        record = _record(admin, answer)
        assert record["status"] == 408 and record["decision"] == "deny", record
        assert record["rule_ids"] == ["request-timeout"], record
        assert record["customer_id"] == customer_id, record
    # The gateway is still serving, and a body that arrives in pieces in time is fine.
    assert _chunked_in_time(gateway, credentials).status_code == 200


def _chunked_in_time(gateway: Proc, headers: dict[str, str]) -> httpx.Response:
    def pieces() -> Iterator[bytes]:
        chat = {"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]}
        body = orjson.dumps(chat)
        for i in range(0, len(body), 16):
            time.sleep(0.05)
            yield body[i : i + 16]

    headers = {**headers, "content-type": "application/json"}
    return httpx.post(f"{gateway.url}/v1/chat/completions", content=pieces(), headers=headers,
                      timeout=10)  # fmt: skip
