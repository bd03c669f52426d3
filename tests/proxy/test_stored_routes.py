"""Which paths name a call on a stored response (gateway.proxy.stored_routes)."""

from __future__ import annotations

from gateway.proxy.stored_routes import (
    CANCEL_ROUTE,
    INPUT_ITEMS_ROUTE,
    RESPONSE_ROUTE,
    StoredCall,
    stored_call,
    wants_stream,
)


def test_the_four_calls_and_their_methods() -> None:
    assert stored_call("/v1/responses/resp_1", "GET") == StoredCall(
        RESPONSE_ROUTE, "resp_1", "retrieve")
    assert stored_call("/v1/responses/resp_1", "DELETE") == StoredCall(
        RESPONSE_ROUTE, "resp_1", "delete")
    assert stored_call("/v1/responses/resp_1/cancel", "POST") == StoredCall(
        CANCEL_ROUTE, "resp_1", "cancel")
    assert stored_call("/v1/responses/resp_1/input_items", "GET") == StoredCall(
        INPUT_ITEMS_ROUTE, "resp_1", "input_items")
    # Another method on a served route: a 405 naming what is allowed.
    put = stored_call("/v1/responses/resp_1", "PUT")
    assert put is not None and put.operation is None and put.allowed_methods == "GET, DELETE"


def test_only_the_exact_spelling_is_a_call() -> None:
    for path in ("/v1/responses", "/v1/responses/", "/v1/responses//cancel",
                 "/v1/responses/resp_1/", "/v1/responses/resp_1/cancel/more",
                 "/v1/responses/resp_1/Cancel", "/V1/responses/resp_1",
                 "/v1/responses/" + "x" * 129, "/v1/chat/completions/x"):
        assert stored_call(path, "GET") is None, path


def test_a_streamed_retrieval() -> None:
    assert wants_stream(b"stream=true&starting_after=3")
    assert not wants_stream(b"stream=false") and not wants_stream(b"")
