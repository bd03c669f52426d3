"""The proxy through the official SDKs: both API shapes, streaming unbuffered."""

from __future__ import annotations

import time

import anthropic
import httpx
import openai
import pytest

from gateway.demo.standin import REPLY
from tests.e2e.conftest import US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
XFF = {"x-forwarded-for": US_IP}


def _openai(gateway: Proc, key: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=key, default_headers={**XFF, **headers}, max_retries=0
    )


def _anthropic(gateway: Proc, key: str, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.url, api_key=key, default_headers={**XFF, **headers}, max_retries=0
    )


def test_openai_chat_non_streaming(gateway: Proc, enterprise_key: str) -> None:
    client = _openai(gateway, enterprise_key)
    raw = client.chat.completions.with_raw_response.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == REPLY
    assert completion.usage is not None and completion.usage.total_tokens == 19
    assert len(raw.headers["x-gateway-decision-id"]) == 26
    assert len(raw.headers["x-gateway-policy-version"]) == 64
    assert "x-ratelimit-remaining-requests" in raw.headers
    # The gateway's server dates and names its answers; the upstream's own
    # date/server headers are not relayed on top (they were, twice over).
    for stream in (False, True):
        answer = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            headers={**XFF, "authorization": f"Bearer {enterprise_key}"},
            json={"model": "haiku-lite", "stream": stream,
                  "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 200
        assert len(answer.headers.get_list("date")) == 1
        assert len(answer.headers.get_list("server")) <= 1
        # A proxy in front (nginx) must not buffer a stream into lumps.
        assert answer.headers.get("x-accel-buffering") == ("no" if stream else None)


def test_openai_other_endpoints(gateway: Proc, enterprise_key: str) -> None:
    client = _openai(gateway, enterprise_key)
    assert client.completions.create(model="haiku-lite", prompt="hi").choices[0].text == REPLY
    # The SDK asks for base64 by default and the stand-in answers float32, as OpenAI does.
    assert client.embeddings.create(model="haiku-lite", input="hi").data[0].embedding == (
        pytest.approx([0.0, 0.1, 0.2], rel=1e-6)
    )
    response = client.responses.create(model="haiku-lite", input="hi")
    assert response.output_text == REPLY


def test_openai_stream_is_not_buffered(gateway: Proc, enterprise_key: str) -> None:
    client = _openai(
        gateway, enterprise_key, **{"x-standin-chunks": "10", "x-standin-interval-ms": "50"}
    )
    start = time.monotonic()
    arrivals: list[float] = []
    texts: list[str] = []
    stream = client.chat.completions.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    for chunk in stream:
        arrivals.append(time.monotonic() - start)
        if chunk.choices and chunk.choices[0].delta.content:
            texts.append(chunk.choices[0].delta.content)
    assert texts == [f"tok{i} " for i in range(10)]
    # Nine 50 ms gaps upstream: the first chunk must arrive long before the last
    # is sent. A buffering proxy would deliver everything at once at the end.
    assert arrivals[-1] - arrivals[0] >= 0.35, arrivals
    # The usage chunk the gateway asked for on the client's behalf is not shown.
    assert all(chunk_time >= 0 for chunk_time in arrivals)


def test_openai_stream_keeps_usage_when_client_asks(gateway: Proc, enterprise_key: str) -> None:
    client = _openai(gateway, enterprise_key)
    chunks = list(
        client.chat.completions.create(
            model="haiku-lite",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_openai_stream_without_usage_request_has_no_usage_chunk(
    gateway: Proc, enterprise_key: str
) -> None:
    client = _openai(gateway, enterprise_key)
    chunks = list(
        client.chat.completions.create(
            model="haiku-lite", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)


def test_long_prompt_stream_is_decided_on_the_whole_prompt(
    gateway: Proc, enterprise_key: str, admin: Admin
) -> None:
    # Longer than the prompt text an exchange keeps once decided, with the only
    # cyber marker at the very end: classification saw all of it, the usage
    # member was spliced into the forwarded body (the stand-in parsed it), and
    # the stream arrives whole without the usage chunk the client did not ask for.
    prompt = "lorem ipsum dolor " * 60_000 + "now write the shellcode"
    client = _openai(gateway, enterprise_key)
    raw = client.chat.completions.with_raw_response.create(
        model="haiku-lite", messages=[{"role": "user", "content": prompt}], stream=True
    )
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "tok0 tok1 tok2 tok3 tok4 "
    assert all(chunk.usage is None for chunk in chunks)
    record = admin.http.get(f"/admin/v1/decisions/{raw.headers['x-gateway-decision-id']}")
    assert record.status_code == 200, record.text
    assert "cyber" in record.json()["capabilities"]


def test_anthropic_messages(gateway: Proc, enterprise_key: str) -> None:
    client = _anthropic(gateway, enterprise_key)
    message = client.messages.create(
        model="haiku-lite", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].type == "text" and message.content[0].text == REPLY
    count = client.messages.count_tokens(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}]
    )
    assert count.input_tokens == 12


def test_anthropic_stream_is_not_buffered(gateway: Proc, enterprise_key: str) -> None:
    client = _anthropic(
        gateway, enterprise_key, **{"x-standin-chunks": "8", "x-standin-interval-ms": "50"}
    )
    start = time.monotonic()
    arrivals: list[float] = []
    with client.messages.stream(
        model="haiku-lite", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        for text in stream.text_stream:
            arrivals.append(time.monotonic() - start)
            assert text.startswith("tok")
        final = stream.get_final_message()
    assert len(arrivals) == 8
    assert arrivals[-1] - arrivals[0] >= 0.25, arrivals
    assert final.usage.output_tokens == 8


def test_api_key_header_and_bearer_both_work(gateway: Proc, enterprise_key: str) -> None:
    body = {"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]}
    for headers in ({"x-api-key": enterprise_key}, {"authorization": f"Bearer {enterprise_key}"}):
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions", json=body, headers={**XFF, **headers}
        )
        assert response.status_code == 200, response.text


def test_the_gateways_own_refusals_carry_a_request_id_the_sdks_read(
    gateway: Proc, enterprise_key: str
) -> None:
    """SDKs surface ``x-request-id`` (OpenAI) and ``request-id`` (Anthropic) as
    ``error.request_id``, the id a developer quotes to support. The gateway's
    own refusals had none (None in the SDK); they now carry the decision id,
    the key to the refusal's audit record."""
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _openai(gateway, enterprise_key).chat.completions.create(
            model="mythos-5", messages=[{"role": "user", "content": "hi"}])
    decision = refused.value.response.headers["x-gateway-decision-id"]
    assert refused.value.request_id == decision
    with pytest.raises(anthropic.AuthenticationError) as unknown:
        _anthropic(gateway, "gk_nope_nope").messages.create(
            model="haiku-lite", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.request_id == unknown.value.response.headers["x-gateway-decision-id"]
