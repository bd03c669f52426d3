"""Log-probability flags of another JSON type are refused, not read as "not asked".

``traces`` (log-probabilities, reasoning) is refused to the public tier. The
gateway read ``logprobs`` as asked only when it was ``true`` or an integer and
``top_logprobs`` only as an integer, so ``"logprobs": "true"`` or
``"top_logprobs": 5.0`` counted as not asking and was forwarded. An
OpenAI-compatible upstream that validates leniently (pydantic's lax mode, as
vLLM's server does) reads both as asking and returns the log-probabilities.
Like ``n``, ``max_tokens`` and ``stream``, a flag of the wrong type is a 400.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import PUBLIC_PERSON, US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

StandinLog = Callable[[], list[dict[str, object]]]


def test_a_log_probability_flag_of_another_type_is_a_400(
    gateway: Proc, admin: Admin, standin_log: StandinLog
) -> None:
    key = admin.customer_with_key(**PUBLIC_PERSON)
    chat = {"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]}
    cases: list[tuple[str, dict[str, object], str]] = [
        ("/v1/chat/completions", {**chat, "logprobs": "true"}, "logprobs"),
        ("/v1/chat/completions", {**chat, "logprobs": 1.0}, "logprobs"),
        ("/v1/chat/completions", {**chat, "top_logprobs": 5.0}, "top_logprobs"),
        ("/v1/chat/completions", {**chat, "top_logprobs": "5"}, "top_logprobs"),
        ("/v1/completions", {"model": "haiku-lite", "prompt": "2 + 2 =", "logprobs": "5"},
         "logprobs"),
        ("/v1/completions", {"model": "haiku-lite", "prompt": "2 + 2 =", "logprobs": -1},
         "logprobs"),
    ]
    for path, body, param in cases:
        response = httpx.post(
            f"{gateway.url}{path}", json=body, timeout=10,
            headers={"x-forwarded-for": US_IP, "authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert response.status_code == 400, (body, response.status_code, response.text)
        assert response.json()["error"]["param"] == param, body
        assert response.headers["x-gateway-decision-id"]
    assert standin_log() == []
    # Not asking, in either spelling, is still served.
    for body in ({**chat, "logprobs": False}, {**chat, "logprobs": None, "top_logprobs": None}):
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions", json=body, timeout=10,
            headers={"x-forwarded-for": US_IP, "authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert response.status_code == 200, (body, response.text)
