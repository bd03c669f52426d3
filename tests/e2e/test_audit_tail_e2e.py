"""An auditor tailing the decision log by cursor sees every record.

Tailing is: page through ``GET /admin/v1/decisions`` in id order, keep the
last cursor, ask again later from it. That only works if a record committed
later never gets an id below one already handed out: a decision id taken
when the request *arrived* broke it, since a request whose body took a while
to arrive committed after faster ones with higher ids, behind every tailing
auditor's cursor, and was never seen by them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
CHAT = b'{"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]}'


def test_a_slow_request_is_not_committed_behind_a_tailing_cursor(
    gateway: Proc, admin: Admin
) -> None:
    customer = str(admin.customer(**US_ENTERPRISE)["id"])
    key = admin.key(customer)
    headers = {"authorization": f"Bearer {key}", "x-forwarded-for": US_IP,
               "content-type": "application/json"}  # fmt: skip
    started, release = threading.Event(), threading.Event()

    def trickled() -> Iterator[bytes]:
        yield CHAT[:20]
        started.set()
        release.wait(10)
        yield CHAT[20:]

    slow: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: slow.append(httpx.post(
        f"{gateway.url}/v1/chat/completions", headers=headers, content=trickled(), timeout=20)))
    thread.start()
    assert started.wait(10)
    time.sleep(0.2)  # the slow request has arrived and is reading its body
    fast = httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers, content=CHAT)
    assert fast.status_code == 200, fast.text

    # The auditor reads the log to its end and keeps the last id as its cursor.
    page = admin.http.get("/admin/v1/decisions", params={"customer_id": customer}).json()
    assert [d["id"] for d in page["items"]] == [fast.headers["x-gateway-decision-id"]]
    cursor = page["items"][-1]["id"]

    release.set()
    thread.join(20)
    assert slow and slow[0].status_code == 200, slow
    later = admin.http.get("/admin/v1/decisions",
                           params={"customer_id": customer, "cursor": cursor}).json()
    assert [d["id"] for d in later["items"]] == [slow[0].headers["x-gateway-decision-id"]]
