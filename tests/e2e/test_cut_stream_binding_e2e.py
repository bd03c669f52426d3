"""Ids a stream showed are its caller's however the stream ends.

A stream's ids were bound only once its last event with usage had been seen
(``response.completed``, Anthropic's ``message_delta``, the chat usage
chunk). A stream that ended before (the client hanging up, an account cut,
a policy ``in_flight: cut``) left the ids it had already shown unbound: its
own customer got 404 naming them later. Each test reads a paced stream
until it has shown an id, ends it there, then names the id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.test_file_binding_e2e import anthropic_shapes
from tests.e2e.test_reference_binding_e2e import (
    ANTHROPIC_CODE,
    CODE,
    XFF,
    Log,
    anthropic_client,
    assert_not_found_unforwarded,
    openai_client,
    two_customers,
)
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

SLOW = {"x-standin-interval-ms": "300", "x-standin-chunks": "1"}
"""About 1 s between the event showing an id and the stream's end: time for
the gateway to see the client go."""


def _eventually(attempt: Callable[[], object], refused: type[Exception]) -> None:
    """``attempt`` succeeds within 5 s: a hang-up's binding is written as the
    gateway sees the client go, a moment after the client has left."""
    deadline = time.monotonic() + 5
    while True:
        try:
            attempt()
            return
        except refused:
            assert time.monotonic() < deadline, "the id the stream showed was never bound"
            time.sleep(0.1)


def _outcome_error(admin: Admin, decision_id: str) -> str | None:
    url = f"/admin/v1/decisions/{decision_id}"
    deadline = time.monotonic() + 5
    while not admin.http.get(url).json()["outcomes"]:
        assert time.monotonic() < deadline, "no outcome recorded"
        time.sleep(0.1)
    error: str | None = admin.http.get(url).json()["outcomes"][0]["error"]
    return error


def test_a_responses_stream_the_client_left_binds_what_it_showed(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner, stranger = openai_client(gateway, owner_key), openai_client(gateway, stranger_key)
    raw = owner.responses.with_raw_response.create(
        model="haiku-lite", input="chart it", tools=CODE, stream=True, extra_headers=SLOW)
    container_id = file_id = ""
    with raw.parse() as events:
        for event in events:
            if event.type == "response.output_item.added" and event.item.type == (
                "code_interpreter_call"
            ):
                container_id = event.item.container_id
            if event.type == "response.output_text.annotation.added":
                file_id = event.annotation.file_id  # type: ignore[union-attr]
                break  # hang up before response.completed
    assert container_id and file_id
    assert _outcome_error(admin, raw.headers["x-gateway-decision-id"]) == "client_disconnected"

    def read_file(client: openai.OpenAI) -> Any:
        return client.responses.create(model="haiku-lite", input=[{"role": "user", "content": [
            {"type": "input_file", "file_id": file_id}]}])

    _eventually(lambda: read_file(owner), openai.NotFoundError)
    reused = owner.responses.create(model="haiku-lite", input="again", tools=[
        {"type": "code_interpreter", "container": container_id}])
    assert reused.status == "completed"
    before = len(standin_log())
    with pytest.raises(openai.NotFoundError) as refused:
        read_file(stranger)
    assert_not_found_unforwarded(refused.value, admin, standin_log, before, "file-not-found")


def test_an_anthropic_stream_the_client_left_binds_the_file_it_showed(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner = anthropic_client(gateway, owner_key)
    stranger = anthropic_client(gateway, stranger_key)
    run: Any = [{"role": "user", "content": "write a file"}]
    file_id = ""
    with owner.messages.stream(model="haiku-lite", max_tokens=64, messages=run,
                               tools=ANTHROPIC_CODE, extra_headers=SLOW) as stream:
        for event in stream:
            block = getattr(event, "content_block", None)
            if event.type == "content_block_start" and block is not None and (
                block.type == "bash_code_execution_tool_result"
            ):
                file_id = block.content.content[0].file_id
                break  # hang up before message_delta
    assert file_id
    ask = anthropic_shapes(file_id)[0]
    _eventually(lambda: owner.messages.create(model="haiku-lite", max_tokens=64, messages=ask),
                anthropic.NotFoundError)
    before = len(standin_log())
    with pytest.raises(anthropic.NotFoundError) as refused:
        stranger.messages.create(model="haiku-lite", max_tokens=64, messages=ask)
    assert_not_found_unforwarded(refused.value, admin, standin_log, before, "file-not-found")


def test_a_stream_cut_by_an_account_change_binds_what_it_showed(
    gateway: Proc, admin: Admin
) -> None:
    # The audio id comes in a chat stream's first chunk; its key is revoked
    # mid-stream (account_cut): the customer names the audio on its other key.
    from tests.e2e.conftest import US_ENTERPRISE

    customer = admin.customer(**{**US_ENTERPRISE, "name": "Cut Corp"})
    cut_key, other_key = admin.key(str(customer["id"])), admin.key(str(customer["id"]))
    paced = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=cut_key, max_retries=0,
                          default_headers={**XFF, "x-standin-chunks": "40",
                                           "x-standin-interval-ms": "250"})
    raw = paced.chat.completions.with_raw_response.create(
        model="haiku-lite", stream=True, modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "pcm16"},
        messages=[{"role": "user", "content": "say hi"}])
    audio_id = ""
    with pytest.raises(openai.APIError) as cut:
        for chunk in raw.parse():
            said = getattr(chunk.choices[0].delta, "audio", None) if chunk.choices else None
            if said is not None:
                audio_id = said["id"] if isinstance(said, dict) else said.id
                assert admin.http.delete(f"/admin/v1/keys/{cut_key}").status_code == 200
    assert audio_id and cut.value.code == "key-revoked", cut.value
    assert _outcome_error(admin, raw.headers["x-gateway-decision-id"]) == "account_cut:key-revoked"
    other = openai_client(gateway, other_key)
    turns: Any = [{"role": "user", "content": "say hi"},
                  {"role": "assistant", "audio": {"id": audio_id}},
                  {"role": "user", "content": "again"}]
    assert other.chat.completions.create(model="haiku-lite", messages=turns).choices
