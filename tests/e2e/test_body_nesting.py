"""A body nested deeper than the gateway can walk or re-serialise is a recorded 400.

orjson reads JSON nested up to 1,024 levels but writes at most 255, and the
classifiers walk the body recursively (Python's limit is ~1,000 frames). A
body between those depths parsed, then raised out of the decide stage: an
unrecorded 500 in no API's error shape, with a thousand-frame traceback in
the log, for any customer to produce at will.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

StandinLog = Callable[[], list[dict[str, object]]]
CHAT = b'{"model":"haiku-lite","messages":[{"role":"user","content":"hi"}]'


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _post(gateway: Proc, key: str, path: str, raw: bytes) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{path}",
        content=raw,
        headers={"x-forwarded-for": US_IP, "authorization": f"Bearer {key}",
                 "content-type": "application/json"},
        timeout=10,
    )  # fmt: skip


def test_a_body_nested_too_deeply_is_a_recorded_400(
    gateway: Proc, admin: Admin, enterprise_key: str, standin_log: StandinLog
) -> None:
    batch_params = (b'{"model":"haiku-lite","max_tokens":8,"messages":[{"role":"user",'
                    b'"content":"hi"}],"metadata":' + _nested(300) + b"}")
    cases = [
        # Under a key the classifiers skip: only re-serialising it fails (255 levels).
        ("/v1/chat/completions", CHAT + b',"metadata":' + _nested(300) + b"}"),
        # Under a key they read: walking it runs out of Python's stack first.
        ("/v1/chat/completions", CHAT + b',"x":' + _nested(1000) + b"}"),
        ("/v1/messages/batches",
         b'{"requests":[{"custom_id":"a","params":' + batch_params + b"}]}"),
    ]
    for path, raw in cases:
        response = _post(gateway, enterprise_key, path, raw)
        assert response.status_code == 400, (path, response.status_code, response.text[:200])
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "nested" in error["message"], error
        decision_id = response.headers["x-gateway-decision-id"]
        record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
        assert record["decision"] == "deny" and record["status"] == 400, record
    assert standin_log() == []
    # Deep but ordinary nesting (a JSON Schema a hundred levels down) is served.
    deep_ok = CHAT + b',"response_format":{"type":"json_object"},"x":' + _nested(100) + b"}"
    assert _post(gateway, enterprise_key, "/v1/chat/completions", deep_ok).status_code == 200
