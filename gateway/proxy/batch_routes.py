"""Anthropic's Message Batches API routes.

    POST   /v1/messages/batches                 create (every inner request decided)
    GET    /v1/messages/batches                 list (the caller's own batches only)
    GET    /v1/messages/batches/{id}            retrieve
    POST   /v1/messages/batches/{id}/cancel     cancel
    GET    /v1/messages/batches/{id}/results    results (JSONL, relayed as it comes)
    DELETE /v1/messages/batches/{id}            delete

HEAD is answered wherever GET is (RFC 9110 section 9.3.2): run as the GET,
decided, recorded and forwarded as one, its content dropped
(``Pipeline.handle_batch``).

Matched only after the exact-path lookup of ``gateway.proxy.routes`` (and the
stored-response routes) missed: no other route pays for them. The record and
the metrics name the route by its template, never by the raw path; the batch
id is in the decision record's facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BatchOperation = Literal["create", "list", "retrieve", "cancel", "results", "delete"]

BATCHES_ROUTE = "/v1/messages/batches"
BATCH_ROUTE = "/v1/messages/batches/{id}"
BATCH_CANCEL_ROUTE = "/v1/messages/batches/{id}/cancel"
BATCH_RESULTS_ROUTE = "/v1/messages/batches/{id}/results"
BATCH_ENDPOINTS = frozenset({BATCHES_ROUTE, BATCH_ROUTE, BATCH_CANCEL_ROUTE, BATCH_RESULTS_ROUTE})
MAX_BATCH_ID_CHARS = 128

_PREFIX = BATCHES_ROUTE + "/"
_BY_METHOD: dict[tuple[str, str], BatchOperation] = {
    (BATCHES_ROUTE, "POST"): "create",
    (BATCHES_ROUTE, "GET"): "list",
    (BATCH_ROUTE, "GET"): "retrieve",
    (BATCH_ROUTE, "DELETE"): "delete",
    (BATCH_CANCEL_ROUTE, "POST"): "cancel",
    (BATCH_RESULTS_ROUTE, "GET"): "results",
}
_ALLOWED = {
    BATCHES_ROUTE: "GET, HEAD, POST",
    BATCH_ROUTE: "GET, HEAD, DELETE",
    BATCH_CANCEL_ROUTE: "POST",
    BATCH_RESULTS_ROUTE: "GET, HEAD",
}


@dataclass(frozen=True, slots=True)
class BatchCall:
    """One request on the Message Batches API: which route, which batch, what it does."""

    route: str
    """The route's template (``BATCH_ROUTE``...), recorded as the endpoint."""
    batch_id: str | None
    """None for create and list, which name no batch."""
    operation: BatchOperation | None
    """None: the method is not served on this route (405)."""
    head: bool = False
    """A HEAD, served as the GET on the same route without content."""

    @property
    def allowed_methods(self) -> str:
        return _ALLOWED[self.route]


def batch_call(path: str, method: str) -> BatchCall | None:
    """The Message Batches call ``path`` names, or None when it names none.

    Exact spelling only, as for every route: the id is one non-empty printable
    path segment of at most ``MAX_BATCH_ID_CHARS`` characters.
    """
    head = method == "HEAD"
    if head:
        method = "GET"
    if path == BATCHES_ROUTE:
        return BatchCall(BATCHES_ROUTE, None, _BY_METHOD.get((BATCHES_ROUTE, method)), head)
    if not path.startswith(_PREFIX):
        return None
    segments = path[len(_PREFIX) :].split("/")
    batch_id = segments[0]
    if not batch_id or len(batch_id) > MAX_BATCH_ID_CHARS or not batch_id.isprintable():
        return None
    if len(segments) == 1:
        route = BATCH_ROUTE
    elif len(segments) == 2 and segments[1] == "cancel":
        route = BATCH_CANCEL_ROUTE
    elif len(segments) == 2 and segments[1] == "results":
        route = BATCH_RESULTS_ROUTE
    else:
        return None
    return BatchCall(route, batch_id, _BY_METHOD.get((route, method)), head)
