"""Upstream-stored conversation state, kept to the customer it belongs to.

The Responses API stores each answer upstream (``store`` defaults to true)
and lets a later request continue it by id (``previous_response_id``); a
``conversation`` names a stored conversation the same way. Every customer
reaches the upstream with the gateway's one credential, so to the upstream
all those ids belong to one account: any customer could continue any other
customer's conversation, its whole context included, and a public-tier key
could pick up a government customer's exchange with a frontier model.

So the gateway binds every response id it relays to the customer it relayed
it to (before the client has seen the id, so the binding is always there
first), and refuses a request that continues an id bound to someone else, or
to nobody: 404, as the upstream answers an id it does not know, so a
stranger's id is not even confirmed to exist. Conversations are created
through ``/v1/conversations``, which the gateway does not serve, so no
conversation id is ever bound and a request naming one is refused (on
``/v1/responses`` with a 400 naming the field: ``gateway.proxy.references``).

Each binding also names the model the response was created with and the
capabilities its create was decided with: the calls on a stored response by
id (retrieve, delete, cancel, input items: ``gateway.proxy.stored_routes``)
are decided by the policy as requests for that model with those
capabilities (a directive refusing one of them refuses its output), and
only its customer may make them.

The bindings live in the database, shared by every worker and replica, with
a bounded cache in each process: ``gateway.proxy.response_owners``.
"""

from __future__ import annotations

import logging

import orjson

from gateway.proxy.errors import ProxyError
from gateway.proxy.response_owners import OwnersUnavailable, ResponseOwners
from gateway.proxy.usage import usage_from_doc

log = logging.getLogger(__name__)

RESPONSES_ENDPOINT = "/v1/responses"
MAX_ID_CHARS = 128
STORED_STATE_RULE = "stored-response-not-found"
"""The rule id a refused continuation is recorded with."""


def continued_ids(body: dict[str, object]) -> tuple[str, ...]:
    """The stored state a request body continues: ``previous_response_id`` and
    ``conversation`` (an id, or an object with one)."""
    found: list[str] = []
    previous = body.get("previous_response_id")
    if previous is not None:
        found.append(str(previous))
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if conversation is not None:
        found.append(str(conversation))
    return tuple(found)


def answer_response_id(answer: object) -> str | None:
    """The ``id`` of a complete (non-streamed) Responses API answer, parsed."""
    return _id_of(answer)


class StreamedResponseId:
    """Finds the response id in a Responses API stream's first event.

    ``response.created`` comes first and carries ``response.id``; the relay
    holds each chunk until this has looked at it, so the id is bound before
    the client can read it. Gives up after ``MAX_SCAN`` bytes."""

    MAX_SCAN = 256 * 1024

    def __init__(self) -> None:
        self._pending = b""
        self.done = False

    def feed(self, chunk: bytes) -> str | None:
        """The id, once the first event is complete; None until then (or never)."""
        self._pending += chunk
        for line in self._pending.split(b"\n")[:-1]:  # whole lines only
            line = line.rstrip(b"\r")
            if line.startswith(b"data:"):
                try:
                    event = orjson.loads(line[5:])
                except orjson.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    self.done = True
                    return _id_of(event.get("response"))
        if len(self._pending) > self.MAX_SCAN:
            self.done = True
        return None


def _id_of(obj: object) -> str | None:
    if not isinstance(obj, dict):
        return None
    value = obj.get("id")
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
        return value
    return None


class ResponseBinding:
    """Binds one Responses answer's id to its caller before the client sees it."""

    def __init__(
        self,
        owners: ResponseOwners,
        customer_id: str,
        model: str,
        decision_id: str,
        reserved_tokens: int = 0,
        capabilities: frozenset[str] = frozenset(),
    ) -> None:
        self._owners = owners
        self._capabilities = capabilities
        self._customer_id = customer_id
        self._model = model
        self._reserved_tokens = reserved_tokens
        self._decision_id = decision_id
        self._stream: StreamedResponseId | None = None
        self.streamed_id: str | None = None
        """The id a stream's first event carried, once bound (``streamed``)."""

    async def answer(self, parsed: object) -> None:
        """A complete answer (parsed): bound, or a 503 and the answer withheld."""
        response_id = answer_response_id(parsed)
        if response_id is None:
            return
        # Answered without usage (background mode: queued): the reservation
        # stays charged (``gateway.proxy.settle``), and the binding remembers it
        # until a retrieval shows what the response really used.
        usage = usage_from_doc(parsed)
        unsettled = self._reserved_tokens if usage is None else None
        try:
            await self._owners.bind(
                response_id, self._customer_id, self._model, unsettled or None,
                self._capabilities, usage.total if usage is not None else None,
            )
        except OwnersUnavailable as exc:
            log.error("%s; answer to %s withheld", exc, self._decision_id)
            raise ProxyError(
                503,
                "the gateway could not record who owns this response; it was not delivered",
                code="database_unavailable",
                headers={"retry-after": "1"},
            ) from None

    async def streamed(self, data: bytes) -> bool:
        """Relayed stream bytes, seen before they go out; False: the id could not
        be bound, and the stream must end before this chunk."""
        if self._stream is None:
            self._stream = StreamedResponseId()
        elif self._stream.done:
            return True
        response_id = self._stream.feed(data)
        if response_id is None:
            return True
        try:
            await self._owners.bind(
                response_id, self._customer_id, self._model, capabilities=self._capabilities
            )
        except OwnersUnavailable as exc:
            log.error("%s; stream %s ended before its id was sent", exc, self._decision_id)
            return False
        self.streamed_id = response_id
        return True
