"""Clients hanging up while the gateway writes leave its database writable.

A streamed answer that shows ids binds them to the customer at the stream's
end (``proxy.reference_owners``), in the request's task, which the gateway
cancels when the client hangs up. Session 15: a hang-up that cut such a write
short kept SQLite's write lock, and every audit commit after it failed:
503 for every customer. Here clients hang up at every point of such streams
(after each chunk, after ``[DONE]``), the way the openai SDK and impatient
clients do, and then the next writes (an admin write, a request's audit
record) go through at once, on the real gateway process over real SQLite.
"""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
XFF = {"x-forwarded-for": US_IP}
CHUNKS = 6
SPOKEN_STREAM = {
    "model": "haiku-lite", "stream": True, "modalities": ["text", "audio"],
    "audio": {"voice": "alloy", "format": "pcm16"},
    "messages": [{"role": "user", "content": "say hi"}],
}  # fmt: skip


def _hang_up_after(gateway: Proc, key: str, lines: int | None) -> str:
    """Stream a spoken answer and hang up after ``lines`` data lines (None:
    after ``[DONE]``); the answer's decision id."""
    headers = {**XFF, "authorization": f"Bearer {key}", "x-standin-chunks": str(CHUNKS)}
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{gateway.url}/v1/chat/completions",
                      json=SPOKEN_STREAM, headers=headers) as response,  # fmt: skip
    ):
        assert response.status_code == 200
        seen = 0
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            seen += 1
            if line == "data: [DONE]" or (lines is not None and seen >= lines):
                break  # leaving the block closes the connection at once
        return response.headers["x-gateway-decision-id"]


def test_clients_hanging_up_mid_write_leave_the_database_writable(
    gateway: Proc, admin: Admin
) -> None:
    key = admin.customer_with_key(**US_ENTERPRISE)
    points: list[int | None] = [*range(1, CHUNKS + 3), None]
    decisions = [_hang_up_after(gateway, key, lines) for _ in range(3) for lines in points]
    # The next writes go through at once: an admin write, then a request whose
    # audit record must commit before it is answered (503 while locked).
    started = time.monotonic()
    other = admin.customer_with_key(**{**US_ENTERPRISE, "name": "Next Corp"})
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=other, max_retries=0,
                           default_headers=XFF, timeout=10)  # fmt: skip
    answer = client.chat.completions.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices
    assert time.monotonic() - started < 5
    # Every hung-up stream has its outcome record (the audit log took every
    # commit), and some hang-ups cut their request short: the cancellations
    # were real.
    errors = [_outcome_error(admin, decision_id) for decision_id in decisions]
    assert "client_disconnected" in errors, errors


def _outcome_error(admin: Admin, decision_id: str) -> str | None:
    """The error of ``decision_id``'s outcome record (written once its request ends)."""
    deadline = time.monotonic() + 5
    while True:
        record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
        if record.get("outcomes"):
            error: str | None = record["outcomes"][-1].get("error")
            return error
        assert time.monotonic() < deadline, f"no outcome recorded for {decision_id}"
        time.sleep(0.1)
