"""File, audio and vector-store ids stay with the customer they were relayed to.

Files that Anthropic code execution writes are stored in the gateway's one
upstream account; so is a chat answer's audio. A customer who learns another's
file id could pull that file into its own request (a document, an image, a
container upload, an OpenAI ``input_file``...). The gateway serves no
``/v1/files``, so the only ids a customer can hold are the ones relayed to it
and the ones the operator shares (``GATEWAY_SHARED_FILE_IDS``,
``GATEWAY_SHARED_VECTOR_STORE_IDS``): any other is 404, recorded, unforwarded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.e2e.test_reference_binding_e2e import (
    ANTHROPIC_CODE,
    Log,
    anthropic_client,
    assert_not_found_unforwarded,
    openai_client,
    two_customers,
)
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

FILE_RULE = "file-not-found"
SHARED_FILE = "file-operator-handbook"
SHARED_STORE = "vs_operator_docs"


def _file_ids(content: list[Any]) -> list[str]:
    return [output.file_id for block in content
            if block.type == "bash_code_execution_tool_result"
            for output in block.content.content]


def anthropic_shapes(file_id: str) -> list[Any]:
    """Every Anthropic request shape that names a file by id."""
    def ask(part: dict[str, Any]) -> Any:
        return [{"role": "user", "content": [part, {"type": "text", "text": "read it"}]}]

    return [
        ask({"type": "document", "source": {"type": "file", "file_id": file_id}}),
        ask({"type": "image", "source": {"type": "file", "file_id": file_id}}),
        ask({"type": "container_upload", "file_id": file_id}),
    ]


def openai_shapes(file_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every OpenAI request shape that names a file by id: (endpoint, body)."""
    responses = "responses"
    return [
        (responses, {"input": [{"role": "user", "content": [
            {"type": "input_file", "file_id": file_id}]}]}),
        (responses, {"input": [{"role": "user", "content": [
            {"type": "input_image", "file_id": file_id, "detail": "auto"}]}]}),
        (responses, {"input": "run", "tools": [
            {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [file_id]}}]}),
        ("chat", {"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_id": file_id}}]}]}),
    ]


def send_openai(client: openai.OpenAI, endpoint: str, body: dict[str, Any]) -> Any:
    if endpoint == "responses":
        return client.responses.create(model="haiku-lite", **body)
    return client.chat.completions.create(model="haiku-lite", **body)


def test_code_execution_files_are_named_only_by_their_customer(
    gateway_factory: Callable[..., Proc], standin_log: Log
) -> None:
    gateway = gateway_factory(env={"GATEWAY_SHARED_FILE_IDS": f"{SHARED_FILE}, file-other"})
    admin = Admin(gateway.url)
    owner_key, stranger_key = two_customers(admin)
    owner = anthropic_client(gateway, owner_key)
    stranger = anthropic_client(gateway, stranger_key)
    run: Any = [{"role": "user", "content": "write a file"}]

    made = owner.messages.create(model="haiku-lite", max_tokens=64, messages=run,
                                 tools=ANTHROPIC_CODE)
    with owner.messages.stream(model="haiku-lite", max_tokens=64, messages=run,
                               tools=ANTHROPIC_CODE) as stream:
        final = stream.get_final_message()
    own = [*_file_ids(made.content), *_file_ids(final.content)]
    assert len(own) == 2 and own[0] != own[1]

    for file_id in [*own, "file_never_issued"]:
        for messages in anthropic_shapes(file_id):
            before = len(standin_log())
            with pytest.raises(anthropic.NotFoundError) as refused:
                stranger.messages.create(model="haiku-lite", max_tokens=64, messages=messages,
                                         tools=ANTHROPIC_CODE)
            assert refused.value.body["error"]["type"] == "not_found_error", refused.value.body  # type: ignore[index]
            assert_not_found_unforwarded(refused.value, admin, standin_log, before, FILE_RULE)
        for endpoint, body in openai_shapes(file_id):
            before = len(standin_log())
            with pytest.raises(openai.NotFoundError) as denied:
                send_openai(openai_client(gateway, stranger_key), endpoint, body)
            assert denied.value.body["code"] == FILE_RULE, denied.value.body  # type: ignore[index]
            assert_not_found_unforwarded(denied.value, admin, standin_log, before, FILE_RULE)
    # Its own customer names them in every shape; anyone names a shared file.
    for file_id, client, key in [*((f, owner, owner_key) for f in own),
                                 (SHARED_FILE, stranger, stranger_key)]:
        for messages in anthropic_shapes(file_id):
            client.messages.create(model="haiku-lite", max_tokens=64, messages=messages,
                                   tools=ANTHROPIC_CODE)
        for endpoint, body in openai_shapes(file_id):
            send_openai(openai_client(gateway, key), endpoint, body)


def test_vector_stores_are_named_only_when_the_operator_shares_them(
    gateway_factory: Callable[..., Proc], standin_log: Log
) -> None:
    gateway = gateway_factory(env={"GATEWAY_SHARED_VECTOR_STORE_IDS": SHARED_STORE})
    admin = Admin(gateway.url)
    client = openai_client(gateway, two_customers(admin)[0])

    def search(*stores: str) -> Any:
        return client.responses.create(
            model="haiku-lite", input="look it up",
            tools=[{"type": "file_search", "vector_store_ids": list(stores)}])

    assert search(SHARED_STORE).status == "completed"
    for stores in (("vs_someone_else",), (SHARED_STORE, "vs_someone_else")):
        before = len(standin_log())
        with pytest.raises(openai.NotFoundError) as refused:
            search(*stores)
        assert refused.value.body["code"] == "vector-store-not-found", refused.value.body  # type: ignore[index]
        assert_not_found_unforwarded(refused.value, admin, standin_log, before,
                                     "vector-store-not-found")


def test_chat_audio_ids_are_named_only_by_their_customer(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner, stranger = openai_client(gateway, owner_key), openai_client(gateway, stranger_key)
    said = owner.chat.completions.create(
        model="haiku-lite", modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
        messages=[{"role": "user", "content": "say hi"}])
    audio = said.choices[0].message.audio
    assert audio is not None

    def follow_up(client: openai.OpenAI, audio_id: str) -> Any:
        return client.chat.completions.create(
            model="haiku-lite",
            messages=[{"role": "user", "content": "say hi"},
                      {"role": "assistant", "audio": {"id": audio_id}},
                      {"role": "user", "content": "again"}])

    for audio_id in (audio.id, "audio_never_issued"):
        before = len(standin_log())
        with pytest.raises(openai.NotFoundError) as refused:
            follow_up(stranger, audio_id)
        assert refused.value.body["code"] == "audio-not-found", refused.value.body  # type: ignore[index]
        assert_not_found_unforwarded(refused.value, admin, standin_log, before,
                                     "audio-not-found")
    assert follow_up(owner, audio.id).choices[0].message.content


def test_a_streamed_chat_audio_id_is_bound_to_its_customer(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    # The id comes in an early chunk, not the last one with the usage: the
    # stream's tap keeps that chunk for it.
    owner_key, stranger_key = two_customers(admin)
    owner, stranger = openai_client(gateway, owner_key), openai_client(gateway, stranger_key)
    ids = [chunk.choices[0].delta.audio.id  # type: ignore[union-attr]
           for chunk in owner.chat.completions.create(
               model="haiku-lite", stream=True, modalities=["text", "audio"],
               audio={"voice": "alloy", "format": "pcm16"},
               messages=[{"role": "user", "content": "say hi"}])
           if chunk.choices and getattr(chunk.choices[0].delta, "audio", None)]
    assert len(ids) == 1
    turns: Any = [{"role": "user", "content": "say hi"},
                  {"role": "assistant", "audio": {"id": ids[0]}},
                  {"role": "user", "content": "again"}]
    before = len(standin_log())
    with pytest.raises(openai.NotFoundError) as refused:
        stranger.chat.completions.create(model="haiku-lite", messages=turns)
    assert_not_found_unforwarded(refused.value, admin, standin_log, before, "audio-not-found")
    assert owner.chat.completions.create(model="haiku-lite", messages=turns).choices


def test_a_batch_request_naming_anothers_file_refuses_the_batch(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner = anthropic_client(gateway, owner_key)
    stranger = anthropic_client(gateway, stranger_key)
    made = owner.messages.create(model="haiku-lite", max_tokens=64, tools=ANTHROPIC_CODE,
                                 messages=[{"role": "user", "content": "write a file"}])
    params: Any = {"model": "haiku-lite", "max_tokens": 64,
                   "messages": anthropic_shapes(_file_ids(made.content)[0])[0]}
    before = len(standin_log())
    with pytest.raises(anthropic.NotFoundError) as refused:
        stranger.messages.batches.create(requests=[{"custom_id": "theirs", "params": params}])
    assert_not_found_unforwarded(refused.value, admin, standin_log, before, FILE_RULE)
    assert owner.messages.batches.create(requests=[{"custom_id": "mine", "params": params}]).id


def test_files_in_a_batchs_results_are_bound_to_its_customer(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner = anthropic_client(gateway, owner_key)
    stranger = anthropic_client(gateway, stranger_key)
    params: Any = {"model": "haiku-lite", "max_tokens": 64, "tools": ANTHROPIC_CODE,
                   "messages": [{"role": "user", "content": "write a file"}]}
    batch = owner.messages.batches.create(requests=[{"custom_id": "mine", "params": params}])
    [line] = list(owner.messages.batches.results(batch.id))
    assert line.result.type == "succeeded"
    [file_id] = _file_ids(line.result.message.content)
    ask = anthropic_shapes(file_id)[0]
    # Bound once the download has ended (after its lines went out, as a stream's).
    deadline = time.monotonic() + 5
    while True:
        try:
            owner.messages.create(model="haiku-lite", max_tokens=64, messages=ask)
            break
        except anthropic.NotFoundError:
            assert time.monotonic() < deadline, "the results' file was never bound"
            time.sleep(0.1)
    before = len(standin_log())
    with pytest.raises(anthropic.NotFoundError) as refused:
        stranger.messages.create(model="haiku-lite", max_tokens=64, messages=ask)
    assert_not_found_unforwarded(refused.value, admin, standin_log, before, FILE_RULE)


def test_a_streamed_id_is_bound_before_the_stream_says_it_is_over(
    gateway: Proc, admin: Admin
) -> None:
    """A client may name an id the moment it reads the stream's terminal event
    (``data: [DONE]``), on another connection, before the gateway has ended the
    response: the id must be bound by then, not a moment after (a false 404
    for its own owner)."""
    owner_key, _ = two_customers(admin)
    owner = openai_client(gateway, owner_key)
    headers = {"authorization": f"Bearer {owner_key}", "x-forwarded-for": "8.8.8.8"}
    body = {"model": "haiku-lite", "stream": True, "modalities": ["text", "audio"],
            "audio": {"voice": "alloy", "format": "pcm16"},
            "messages": [{"role": "user", "content": "say hi"}]}  # fmt: skip
    refused = 0
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        for _ in range(15):
            with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as answer:
                seen = b""
                for piece in answer.iter_raw():
                    seen += piece
                    if b"data: [DONE]" in seen:
                        break
                audio_id = seen.split(b'"audio":{"id":"', 1)[1].split(b'"', 1)[0].decode()
                turns: Any = [{"role": "user", "content": "say hi"},
                              {"role": "assistant", "audio": {"id": audio_id}},
                              {"role": "user", "content": "again"}]
                try:  # still inside the stream: its response has not ended yet
                    owner.chat.completions.create(model="haiku-lite", messages=turns)
                except openai.NotFoundError:
                    refused += 1
    assert refused == 0, f"{refused} of 15 owners were refused their own audio id"
