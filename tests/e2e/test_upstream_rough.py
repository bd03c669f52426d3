"""An upstream that misbehaves at the byte level (``tests/support/rough_upstream.py``):
compressed answers, CRLF-framed streams, ``Expect`` never answered, bodies cut
short, the platform's own rate-limit headers, a refused gateway credential,
slow answers whose client leaves, huge answers, error events mid-stream."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import Admin, Proc, start_rough_upstream

pytestmark = pytest.mark.e2e
CHAT = {"model": "haiku-lite", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
MESSAGE = {"model": "haiku-lite", "max_tokens": 16, "stream": True,
           "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def rough() -> Iterator[Proc]:
    proc = start_rough_upstream()
    yield proc
    proc.stop()


@pytest.fixture()
def gateway(gateway_factory: GatewayFactory, rough: Proc) -> Proc:
    return gateway_factory(upstream_url=rough.url, env={"GATEWAY_UPSTREAM_READ_TIMEOUT": "3"})


@pytest.fixture()
def key(gateway: Proc) -> str:
    return Admin(gateway.url).customer_with_key(**US_ENTERPRISE)


def _post(gateway: Proc, key: str, mode: str, body: dict[str, object] = CHAT,
          path: str = "/v1/chat/completions", **headers: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}{path}", json=body, timeout=20, headers={
        "authorization": f"Bearer {key}", "x-forwarded-for": US_IP, "x-rough": mode, **headers})


def _outcome(gateway: Proc, decision_id: str) -> dict[str, object]:
    admin = Admin(gateway.url)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
        if record.get("outcomes"):
            outcome: dict[str, object] = record["outcomes"][0]
            return outcome
        time.sleep(0.1)
    raise AssertionError(f"no outcome for {decision_id}")


def _seen(rough: Proc) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = httpx.get(f"{rough.url}/_rough/log").json()
    return entries


def test_usage_is_read_and_the_upstream_asked_for_no_compression(
    gateway: Proc, key: str, rough: Proc
) -> None:
    # The SDKs send Accept-Encoding: gzip; a gzip answer the gateway cannot
    # read stayed charged at its whole reservation (1,000+ tokens, not 13).
    plain = _post(gateway, key, "", **{"accept-encoding": "gzip, deflate"})
    assert plain.status_code == 200, plain.text
    assert _seen(rough)[-1]["headers"]["accept-encoding"] == "identity"  # type: ignore[index]
    outcome = _outcome(gateway, plain.headers["x-gateway-decision-id"])
    assert (outcome["tokens_in"], outcome["tokens_out"]) == (9, 4)
    # An upstream that compresses anyway is still read.
    packed = _post(gateway, key, "gzip-always", **{"accept-encoding": "gzip"})
    assert packed.status_code == 200 and packed.json()["usage"]["total_tokens"] == 13
    outcome = _outcome(gateway, packed.headers["x-gateway-decision-id"])
    assert (outcome["tokens_in"], outcome["tokens_out"]) == (9, 4)


def test_a_crlf_framed_stream_is_relayed_as_it_comes_without_the_usage_chunk(
    gateway: Proc, key: str
) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                           default_headers={"x-forwarded-for": US_IP, "x-rough": "crlf"})
    arrivals: list[float] = []
    contents: list[str | None] = []
    start = time.monotonic()
    for chunk in client.chat.completions.create(model="haiku-lite", stream=True,
                                                messages=[{"role": "user", "content": "hi"}]):
        arrivals.append(time.monotonic() - start)
        contents.append(chunk.choices[0].delta.content)  # no usage-only chunk: no IndexError
    assert contents == ["t0", "t1", "t2", "t3", None]
    # Paced 200 ms apart upstream: relayed as they come, not all at the end.
    assert arrivals[-1] - arrivals[0] > 0.5, arrivals


def test_expect_100_continue_is_not_forwarded(gateway: Proc, key: str, rough: Proc) -> None:
    # The gateway has the whole body; an upstream that never sends 100 left
    # the request hanging with no timeout to end it.
    response = _post(gateway, key, "", **{"expect": "100-continue"})
    assert response.status_code == 200, response.text
    assert "expect" not in _seen(rough)[-1]["headers"]  # type: ignore[operator]


def test_an_answer_cut_short_is_a_shaped_502_and_charges_nothing(
    gateway: Proc, key: str
) -> None:
    response = _post(gateway, key, "short-body")
    assert response.status_code == 502, response.text
    assert response.json()["error"]["type"] == "api_error"
    assert response.headers["x-gateway-decision-id"]
    outcome = _outcome(gateway, response.headers["x-gateway-decision-id"])
    assert str(outcome["error"]).startswith("upstream_broke:")
    # The reservation was released: the next answer's remaining tokens show
    # only its own reservation taken, not the failed one's too.
    after = _post(gateway, key, "")
    limit = int(after.headers["x-ratelimit-limit-tokens"])
    remaining = int(after.headers["x-ratelimit-remaining-tokens"])
    assert limit - remaining < 1100, (limit, remaining)


def test_the_platforms_rate_limits_and_account_ids_stay_upstream(
    gateway: Proc, key: str
) -> None:
    response = _post(gateway, key, "ratelimit")
    assert response.status_code == 200
    assert response.headers.get_list("x-ratelimit-remaining-requests") == [
        response.headers["x-ratelimit-remaining-requests"]]
    assert response.headers["x-ratelimit-limit-requests"] != "10000"
    for name in ("anthropic-ratelimit-requests-limit", "openai-organization"):
        assert name not in response.headers
    assert response.headers["x-request-id"] == "req_rough"


def test_an_upstream_refusing_the_gateways_own_key_is_a_502(gateway: Proc, key: str) -> None:
    # Not a 401: the client's credential was good; the gateway's is not.
    response = _post(gateway, key, "unauthorized")
    assert response.status_code == 502, response.text
    assert "gateway's credential" in response.json()["error"]["message"]


def test_a_client_leaving_a_slow_answer_cuts_the_upstream(
    gateway: Proc, key: str, rough: Proc
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=1.5, headers={
            "authorization": f"Bearer {key}", "x-forwarded-for": US_IP, "x-rough": "slow"})
    time.sleep(0.5)
    entry = _seen(rough)[-1]
    # Cut within about a second of the client leaving, not after the 4 s answer.
    assert "peer_closed" in entry, entry
    assert float(entry["peer_closed"]) - float(entry["ts"]) < 3.5  # type: ignore[arg-type]


def test_a_huge_answer_is_relayed_in_pieces(gateway: Proc, key: str) -> None:
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=30,
                      headers={"authorization": f"Bearer {key}", "x-forwarded-for": US_IP,
                               "x-rough": "huge"}) as response:
        assert response.status_code == 200
        size = sum(len(piece) for piece in response.iter_raw())
    assert size == 20 * 1024 * 1024 + 2
    outcome = _outcome(gateway, response.headers["x-gateway-decision-id"])
    assert outcome["bytes_out"] == size


def test_an_error_event_mid_stream_is_recorded(gateway: Proc, key: str) -> None:
    response = _post(gateway, key, "error-event", MESSAGE, "/v1/messages")
    assert response.status_code == 200
    assert b"overloaded_error" in response.content
    outcome = _outcome(gateway, response.headers["x-gateway-decision-id"])
    assert outcome["error"] == "upstream_error_event:overloaded_error"



def _chat_stream(base: str, api_key: str, mode: str) -> tuple[list[dict[str, object]], str]:
    """The chunks the OpenAI SDK parses from a stream, and the decision id (if any)."""
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=api_key, max_retries=0,
                           default_headers={"x-forwarded-for": US_IP, "x-rough": mode})
    raw = client.chat.completions.with_raw_response.create(
        model="haiku-lite", stream=True, messages=[{"role": "user", "content": "hi"}])
    chunks = [chunk.model_dump() for chunk in raw.parse()]
    return chunks, raw.headers.get("x-gateway-decision-id", "")


def test_unicode_cut_mid_character_comments_and_sse_fields_arrive_as_sent(
    gateway: Proc, key: str, rough: Proc
) -> None:
    direct, _ = _chat_stream(rough.url, "sk-direct", "sse-split")
    through, _ = _chat_stream(gateway.url, key, "sse-split")
    assert through == direct
    assert direct[0]["choices"][0]["delta"]["content"] == "h\u00e9llo \U0001f30d \u4e16\u754c"  # type: ignore[index]


def test_a_compressed_stream_is_relayed_without_the_usage_chunk_and_settles(
    gateway: Proc, key: str, rough: Proc
) -> None:
    # The gateway asks for include_usage on the client's behalf and removes
    # that chunk again; in a gzip stream it could neither find nor remove it,
    # so the client got a chunk with no choices it never asked for, and the
    # stream stayed charged at its whole reservation.
    direct, _ = _chat_stream(rough.url, "sk-direct", "gzip-stream")
    through, decision_id = _chat_stream(gateway.url, key, "gzip-stream")
    assert through == direct
    assert all(chunk["choices"] for chunk in through)
    outcome = _outcome(gateway, decision_id)
    assert (outcome["tokens_in"], outcome["tokens_out"]) == (9, 3)
