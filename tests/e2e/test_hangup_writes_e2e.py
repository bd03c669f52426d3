"""A client hanging up while the gateway writes leaves its database writable.

A streamed answer that shows ids binds them to the customer at the stream's
end (``proxy.reference_owners``: an ``INSERT ... RETURNING``), in the
request's task, which the gateway cancels when the client hangs up. Session
15: a hang-up that cut such a write short kept SQLite's write lock, and every
audit commit after it failed: 503 for every customer.

Here the write is made to wait (the test holds SQLite's write lock from
outside, as any other writer may) so that the client's hang-up lands while
it is in flight, for sure: the gateway cancels the request's task mid-write.
Once the outside lock is released, the next writes (an admin write, a
request whose audit record must commit) go through at once, on the real
gateway process over real SQLite.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
XFF = {"x-forwarded-for": US_IP}
SPOKEN_STREAM = {
    "model": "haiku-lite", "stream": True, "modalities": ["text", "audio"],
    "audio": {"voice": "alloy", "format": "pcm16"},
    "messages": [{"role": "user", "content": "say hi"}],
}  # fmt: skip


def _database(gateway: Proc) -> str:
    """The gateway's SQLite file (tests/support/processes.py lays it out)."""
    return str(gateway.log_path.parent / "gateway.db")


def test_a_client_hanging_up_mid_write_leaves_the_database_writable(
    gateway: Proc, admin: Admin
) -> None:
    key = admin.customer_with_key(**US_ENTERPRISE)
    headers = {**XFF, "authorization": f"Bearer {key}",
               "x-standin-chunks": "4", "x-standin-interval-ms": "300"}  # fmt: skip
    outside = sqlite3.connect(_database(gateway), isolation_level=None, timeout=5)
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=1.0)) as client,
            client.stream("POST", f"{gateway.url}/v1/chat/completions",
                          json=SPOKEN_STREAM, headers=headers) as response,  # fmt: skip
        ):
            assert response.status_code == 200
            lines = response.iter_lines()
            first = next(lines)  # the first chunk (the stream is on) shows the audio id
            delta = json.loads(first.removeprefix("data: "))["choices"][0]["delta"]
            audio_id = delta["audio"]["id"]
            # From here the stream's end, and its binding, wait for this lock.
            outside.execute("BEGIN IMMEDIATE")
            with pytest.raises(httpx.ReadTimeout):
                for _ in lines:  # the chunks before the end, then silence
                    pass
            # Leaving the block hangs up while the binding waits for the lock.
        time.sleep(0.5)  # the gateway sees the hang-up and cancels the request
    finally:
        if outside.in_transaction:
            outside.execute("ROLLBACK")  # the binding's INSERT goes on now
        outside.close()
    # The next writes go through at once: an admin write, then a request whose
    # audit record must commit before it is answered (503 while locked).
    started = time.monotonic()
    other = admin.customer_with_key(**{**US_ENTERPRISE, "name": "Next Corp"})
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=other, max_retries=0,
                           default_headers=XFF, timeout=20)  # fmt: skip
    for _ in range(3):
        assert client.chat.completions.create(
            model="haiku-lite", messages=[{"role": "user", "content": "hi"}]).choices
    assert time.monotonic() - started < 5
    # And the binding the hang-up interrupted was saved (gateway.db.outlive):
    # the id is its customer's, and no one else's.
    turns: Any = [{"role": "user", "content": "say hi"},
                  {"role": "assistant", "audio": {"id": audio_id}},
                  {"role": "user", "content": "again"}]  # fmt: skip
    owner = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                          default_headers=XFF, timeout=20)  # fmt: skip
    assert owner.chat.completions.create(model="haiku-lite", messages=turns).choices
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="haiku-lite", messages=turns)
