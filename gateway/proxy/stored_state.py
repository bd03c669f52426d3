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
conversation id is ever bound and a request naming one is refused.

The bindings live in the database (``stored_response_owners``), shared by
every worker and replica; each process keeps the ones it has seen in a
bounded cache, so continuing a conversation costs a database read only on
another process's first sight of it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.identity.tables import StoredResponseOwner
from gateway.proxy.errors import ProxyError
from gateway.stages import StageUnavailable

log = logging.getLogger(__name__)

RESPONSES_ENDPOINT = "/v1/responses"
CACHE_SIZE = 10_000
"""Bindings remembered per process (~1.6 MB at most); older ones are read back."""
MAX_ID_CHARS = 128
STORED_STATE_RULE = "stored-response-not-found"
"""The rule id a refused continuation is recorded with."""


class OwnersUnavailable(StageUnavailable):
    component = "database"


class ResponseOwners:
    """Which customer each relayed response id belongs to."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime]
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._known: OrderedDict[str, str] = OrderedDict()

    def _remember(self, response_id: str, customer_id: str) -> None:
        self._known[response_id] = customer_id
        self._known.move_to_end(response_id)
        if len(self._known) > CACHE_SIZE:
            self._known.popitem(last=False)

    async def bind(self, response_id: str, customer_id: str) -> None:
        """Record that ``response_id`` was relayed to ``customer_id`` (idempotent)."""
        if self._known.get(response_id) == customer_id:
            return
        try:
            async with self._sessions() as session:
                session.add(StoredResponseOwner(
                    response_id=response_id, customer_id=customer_id, created_at=self._clock()
                ))  # fmt: skip
                await session.commit()
        except IntegrityError:
            pass  # bound already (the upstream does not reuse ids): the first binding stands
        except (SQLAlchemyError, OSError) as exc:
            raise OwnersUnavailable(f"cannot record the owner of {response_id}: {exc}") from exc
        self._remember(response_id, customer_id)

    async def owner_of(self, response_id: str) -> str | None:
        known = self._known.get(response_id)
        if known is not None:
            return known
        try:
            async with self._sessions() as session:
                owner = await session.scalar(
                    select(StoredResponseOwner.customer_id).where(
                        StoredResponseOwner.response_id == response_id
                    )
                )
        except (SQLAlchemyError, OSError) as exc:
            raise OwnersUnavailable(f"cannot read the owner of {response_id}: {exc}") from exc
        if owner is not None:
            self._remember(response_id, owner)
        return owner


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

    def __init__(self, owners: ResponseOwners, customer_id: str, decision_id: str) -> None:
        self._owners = owners
        self._customer_id = customer_id
        self._decision_id = decision_id
        self._stream: StreamedResponseId | None = None

    async def answer(self, parsed: object) -> None:
        """A complete answer (parsed): bound, or a 503 and the answer withheld."""
        response_id = answer_response_id(parsed)
        if response_id is None:
            return
        try:
            await self._owners.bind(response_id, self._customer_id)
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
            await self._owners.bind(response_id, self._customer_id)
        except OwnersUnavailable as exc:
            log.error("%s; stream %s ended before its id was sent", exc, self._decision_id)
            return False
        return True
