"""The Responses API's calls on one stored response, by id.

    GET    /v1/responses/{id}               retrieve (``?stream=true`` streams it again)
    DELETE /v1/responses/{id}               delete
    POST   /v1/responses/{id}/cancel        cancel a background response
    GET    /v1/responses/{id}/input_items   the input it was created from

Background mode (``background: true``) answers the create call with
``status: queued`` and the client polls retrieve until the response is done,
so without these calls background mode cannot work through the gateway.

They are matched only after the exact-path lookup of ``gateway.proxy.routes``
has missed: the request path of every other route pays nothing for them.
The record and the metrics name the route by its template (``STORED_ENDPOINTS``),
never by the raw path, so probes with random ids do not create a metric
series each; the id itself is in the decision record's facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from gateway.proxy.errors import ProxyError
from gateway.proxy.stored_state import MAX_ID_CHARS, RESPONSES_ENDPOINT

StoredOperation = Literal["retrieve", "delete", "cancel", "input_items"]

RESPONSE_ROUTE = "/v1/responses/{id}"
CANCEL_ROUTE = "/v1/responses/{id}/cancel"
INPUT_ITEMS_ROUTE = "/v1/responses/{id}/input_items"
STORED_ENDPOINTS = frozenset({RESPONSE_ROUTE, CANCEL_ROUTE, INPUT_ITEMS_ROUTE})

_PREFIX = RESPONSES_ENDPOINT + "/"
_BY_METHOD: dict[tuple[str, str], StoredOperation] = {
    (RESPONSE_ROUTE, "GET"): "retrieve",
    (RESPONSE_ROUTE, "DELETE"): "delete",
    (CANCEL_ROUTE, "POST"): "cancel",
    (INPUT_ITEMS_ROUTE, "GET"): "input_items",
}
_ALLOWED = {RESPONSE_ROUTE: "GET, DELETE", CANCEL_ROUTE: "POST", INPUT_ITEMS_ROUTE: "GET"}


@dataclass(frozen=True, slots=True)
class StoredCall:
    """One request on a stored response: which, and what it does."""

    route: str
    """The route's template (``RESPONSE_ROUTE``...), recorded as the endpoint."""
    response_id: str
    operation: StoredOperation | None
    """None: the method is not served on this route (405)."""

    @property
    def allowed_methods(self) -> str:
        return _ALLOWED[self.route]


def stored_call(path: str, method: str) -> StoredCall | None:
    """The stored-response call ``path`` names, or None when it names none.

    Exact spelling only, as for every route (``gateway.proxy.paths``): the id
    is one non-empty path segment of at most ``MAX_ID_CHARS`` characters.
    """
    if not path.startswith(_PREFIX):
        return None
    segments = path[len(_PREFIX) :].split("/")
    response_id = segments[0]
    if not response_id or len(response_id) > MAX_ID_CHARS or not response_id.isprintable():
        return None
    if len(segments) == 1:
        route = RESPONSE_ROUTE
    elif len(segments) == 2 and segments[1] == "cancel":
        route = CANCEL_ROUTE
    elif len(segments) == 2 and segments[1] == "input_items":
        route = INPUT_ITEMS_ROUTE
    else:
        return None
    return StoredCall(route, response_id, _BY_METHOD.get((route, method)))


def wants_stream(query_string: bytes) -> bool:
    """A retrieve with ``?stream=true`` answers with the response's events (SSE).

    The gateway decides, admits and relays the call as a stream or not by
    this; the upstream reads the query itself. So ``stream`` is accepted once,
    spelt so, as ``true`` or ``false`` (what the SDKs send): ``stream=false&
    stream=true`` or ``stream=TRUE`` could be read as a stream here and as a
    plain answer upstream, whose usage the stream relay never sees (the
    background difference would go uncharged). Anything else is a 400.
    """
    found: str | None = None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name.strip().lower() != "stream":
            continue
        if name != "stream" or found is not None or value not in ("true", "false"):
            raise ProxyError(
                400, "'stream' is given once, as true or false", param="stream"
            )
        found = value
    return found == "true"
