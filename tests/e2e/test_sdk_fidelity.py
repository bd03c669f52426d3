"""SDK fidelity: what the official SDKs get through the gateway is what they
get from the upstream directly (the stand-in), but for the gateway's own
refusals and quota headers."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.conftest import PUBLIC_PERSON, US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
XFF = {"x-forwarded-for": US_IP}
MSGS: list[Any] = [{"role": "user", "content": "hi"}]
TOOLS: list[Any] = [{"name": "get_weather", "description": "the weather in a city",
                     "input_schema": {"type": "object",
                                      "properties": {"city": {"type": "string"}}}}]
THINK: Any = {"type": "enabled", "budget_tokens": 1024}


def _clients(url: str, key: str) -> tuple[openai.OpenAI, anthropic.Anthropic]:
    return (
        openai.OpenAI(base_url=f"{url}/v1", api_key=key, default_headers=XFF, max_retries=0),
        anthropic.Anthropic(base_url=url, api_key=key, default_headers=XFF, max_retries=0),
    )


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(warnings=False) if hasattr(value, "model_dump") else value


_RESPONSE_ID = re.compile(r"\b(resp|msg|ci|cntr|container)_[0-9a-f]{24}\b")


def _same_ids(value: Any) -> Any:
    """``value`` with Responses (and item, container) ids made equal: the
    stand-in, like the real API, gives every answer new ones, so a direct call
    and the same call through the gateway cannot carry the same id."""
    if isinstance(value, dict):
        return {k: _same_ids(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_same_ids(v) for v in value)
    if isinstance(value, str):
        return _RESPONSE_ID.sub(r"\1_<id>", value)
    return value


def _error(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        call()
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        headers = exc.response.headers
        return (type(exc).__name__, exc.status_code, exc.body, exc.request_id,
                headers.get("retry-after"), headers.get("x-should-retry"))
    raise AssertionError("no error raised")


def _anthropic_stream(client: anthropic.Anthropic, **kw: Any) -> Any:
    with client.messages.stream(model="haiku-lite", max_tokens=2000, messages=MSGS, **kw) as s:
        return [_dump(e) for e in s], _dump(s.get_final_message())


def _responses_stream(client: openai.OpenAI) -> Any:
    with client.responses.stream(model="haiku-lite", input="hi") as stream:
        return [_dump(e) for e in stream], _dump(stream.get_final_response())


PROBES: dict[str, Callable[[openai.OpenAI, anthropic.Anthropic], Any]] = {
    "chat": lambda o, a: _dump(o.chat.completions.create(model="haiku-lite", messages=MSGS)),
    "chat json": lambda o, a: _dump(o.chat.completions.create(
        model="haiku-lite", messages=MSGS, response_format={"type": "json_object"})),
    "chat stream": lambda o, a: _dump(list(o.chat.completions.create(
        model="haiku-lite", messages=MSGS, stream=True))),
    "completions stream": lambda o, a: _dump(list(o.completions.create(
        model="haiku-lite", prompt="hi", stream=True))),
    "completions stream usage": lambda o, a: _dump(list(o.completions.create(
        model="haiku-lite", prompt="hi", stream=True, stream_options={"include_usage": True}))),
    "responses stream events": lambda o, a: _dump(list(
        o.responses.create(model="haiku-lite", input="hi", stream=True, store=False))),
    "responses stream helper": lambda o, a: _responses_stream(o),
    "embeddings default": lambda o, a: _dump(o.embeddings.create(model="haiku-lite", input="x")),
    "embeddings float": lambda o, a: _dump(o.embeddings.create(
        model="haiku-lite", input="x", encoding_format="float")),
    "embeddings base64": lambda o, a: _dump(o.embeddings.create(
        model="haiku-lite", input="x", encoding_format="base64")),
    "messages stream tools+thinking": lambda o, a: _anthropic_stream(a, tools=TOOLS,
                                                                     thinking=THINK),
    "beta count_tokens": lambda o, a: _dump(a.beta.messages.count_tokens(
        model="haiku-lite", messages=MSGS, betas=["token-counting-2024-11-01"])),
    "request ids": lambda o, a: (
        o.chat.completions.with_raw_response.create(model="haiku-lite", messages=MSGS).request_id,
        a.messages.with_raw_response.create(model="haiku-lite", max_tokens=5,
                                            messages=MSGS).request_id),
    **{
        f"upstream {status}": (
            lambda o, a, status=status: (
                _error(lambda: o.chat.completions.create(
                    model="haiku-lite", messages=MSGS,
                    extra_headers={"x-standin-status": str(status)})),
                _error(lambda: a.messages.create(
                    model="haiku-lite", max_tokens=5, messages=MSGS,
                    extra_headers={"x-standin-status": str(status)})),
            )
        )
        for status in (400, 404, 422, 429, 500, 529)
    },
}


def test_sdks_get_what_the_upstream_sends(
    gateway: Proc, standin: Proc, enterprise_key: str
) -> None:
    direct = _clients(standin.url, "sk-direct")
    through = _clients(gateway.url, enterprise_key)
    for name, probe in PROBES.items():
        assert _same_ids(probe(*through)) == _same_ids(probe(*direct)), name


def _public_key(gateway: Proc) -> str:
    return Admin(gateway.url).customer_with_key(**PUBLIC_PERSON)


def test_a_429_with_a_long_wait_tells_the_sdks_not_to_sleep_through_it(gateway: Proc) -> None:
    # The public tier's daily token budget is spent (the stand-in reports a
    # huge answer); the next request waits a day. The Anthropic SDK sleeps
    # whatever retry-after says, so without x-should-retry: false it hung in
    # its first retry for 24 hours.
    key = _public_key(gateway)
    _, client = _clients(gateway.url, key)
    client.messages.create(model="haiku-lite", max_tokens=64, messages=MSGS,
                           extra_headers={"x-standin-output-tokens": "199990"})
    retrying = client.with_options(max_retries=2)
    caught: list[BaseException] = []

    def call() -> None:
        try:
            retrying.messages.create(model="haiku-lite", max_tokens=64, messages=MSGS)
        except BaseException as exc:
            caught.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "the SDK is sleeping through a day-long retry-after"
    assert len(caught) == 1 and isinstance(caught[0], anthropic.RateLimitError), caught
    headers = caught[0].response.headers
    assert int(headers["retry-after"]) > 3600
    assert headers["x-should-retry"] == "false"
    remaining = headers["x-ratelimit-remaining-tokens"]
    assert headers["anthropic-ratelimit-tokens-remaining"] == remaining
    assert "tokens_per_day" in str(caught[0])
    # A per-minute refusal is still worth waiting for: no x-should-retry.
    refused = None
    openai_client, _ = _clients(gateway.url, _public_key(gateway))
    for _ in range(21):
        try:
            openai_client.embeddings.create(model="haiku-lite", input="x")
        except openai.RateLimitError as exc:
            refused = exc
            break
    assert refused is not None
    assert int(refused.response.headers["retry-after"]) <= 60
    assert "x-should-retry" not in refused.response.headers


def test_a_gateway_404_to_an_anthropic_client_is_in_anthropics_shape(
    gateway: Proc, enterprise_key: str
) -> None:
    _, client = _clients(gateway.url, enterprise_key)
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    body = caught.value.body
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert body["error"]["type"] == "not_found_error"
    assert caught.value.response.headers["x-gateway-decision-id"]


def test_quota_headers_come_in_the_clients_api_format(gateway: Proc, enterprise_key: str) -> None:
    openai_client, anthropic_client = _clients(gateway.url, enterprise_key)
    before = datetime.now(UTC).replace(microsecond=0)
    raw = anthropic_client.messages.with_raw_response.create(
        model="haiku-lite", max_tokens=64, messages=MSGS)
    headers = raw.headers
    for kind in ("requests", "tokens"):
        # Anthropic's names, with the reset as an RFC 3339 instant.
        limit = int(headers[f"anthropic-ratelimit-{kind}-limit"])
        remaining = int(headers[f"anthropic-ratelimit-{kind}-remaining"])
        assert 0 <= remaining < limit
        assert remaining == int(headers[f"x-ratelimit-remaining-{kind}"])
        reset = datetime.fromisoformat(headers[f"anthropic-ratelimit-{kind}-reset"])
        assert before <= reset <= before + timedelta(seconds=62), reset
    # The same on an Anthropic stream, and never on an OpenAI-shaped answer.
    with anthropic_client.messages.with_streaming_response.create(
        model="haiku-lite", max_tokens=64, messages=MSGS, stream=True
    ) as streamed:
        assert "anthropic-ratelimit-requests-remaining" in streamed.headers
    openai_raw = openai_client.chat.completions.with_raw_response.create(
        model="haiku-lite", messages=MSGS)
    assert "x-ratelimit-reset-requests" in openai_raw.headers
    assert not [n for n in openai_raw.headers if n.startswith("anthropic-ratelimit-")]

