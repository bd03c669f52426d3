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
from typing import NamedTuple

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.outlive import outlives_cancel
from gateway.identity.tables import StoredResponseOwner
from gateway.proxy.errors import ProxyError
from gateway.proxy.usage import usage_from_doc
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


class Bound(NamedTuple):
    """Who a stored response was relayed to, and what model made it."""

    customer_id: str
    model: str | None
    """None for a response bound before the model was recorded (migration
    b4c2e8f1a3d7): it can be continued, but not retrieved, by id."""
    unsettled_tokens: int | None = None
    """What its create was charged without usage to settle to (background mode)."""
    capabilities: frozenset[str] | None = None
    """What its create was decided with; None for a binding from before they
    were recorded (migration d2e6b8a4c1f7): the model's own only."""
    context_tokens: int | None = None
    """Its usage, which a request continuing it has the upstream read again
    (reserved by that request); None while unknown."""


class ResponseOwners:
    """Which customer each relayed response id belongs to."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime]
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._known: OrderedDict[str, Bound] = OrderedDict()

    def _remember(self, response_id: str, bound: Bound) -> None:
        self._known[response_id] = bound
        self._known.move_to_end(response_id)
        if len(self._known) > CACHE_SIZE:
            self._known.popitem(last=False)

    @outlives_cancel  # gateway.db.outlive: a hung-up client cannot cut it short
    async def bind(
        self,
        response_id: str,
        customer_id: str,
        model: str | None = None,
        unsettled_tokens: int | None = None,
        capabilities: frozenset[str] | None = None,
        context_tokens: int | None = None,
    ) -> None:
        """Record that ``response_id`` was relayed to ``customer_id`` (idempotent)."""
        known = self._known.get(response_id)
        if known is not None and known.customer_id == customer_id:
            return
        try:
            async with self._sessions() as session:
                session.add(StoredResponseOwner(
                    response_id=response_id, customer_id=customer_id, model=model,
                    unsettled_tokens=unsettled_tokens, created_at=self._clock(),
                    capabilities=sorted(capabilities) if capabilities is not None else None,
                    context_tokens=context_tokens,
                ))  # fmt: skip
                await session.commit()
        except IntegrityError:
            # Bound already (the upstream does not reuse ids): the first binding
            # stands, and is read back rather than assumed to be this one.
            self._known.pop(response_id, None)
            return
        except (SQLAlchemyError, OSError) as exc:
            raise OwnersUnavailable(f"cannot record the owner of {response_id}: {exc}") from exc
        self._remember(
            response_id, Bound(customer_id, model, unsettled_tokens, capabilities, context_tokens)
        )

    async def binding_of(self, response_id: str) -> Bound | None:
        known = self._known.get(response_id)
        if known is not None:
            return known
        try:
            async with self._sessions() as session:
                row = (await session.execute(
                    select(StoredResponseOwner.customer_id, StoredResponseOwner.model,
                           StoredResponseOwner.unsettled_tokens,
                           StoredResponseOwner.capabilities,
                           StoredResponseOwner.context_tokens).where(
                        StoredResponseOwner.response_id == response_id
                    )
                )).first()  # fmt: skip
        except (SQLAlchemyError, OSError) as exc:
            raise OwnersUnavailable(f"cannot read the owner of {response_id}: {exc}") from exc
        if row is None:
            return None
        caps = frozenset(row[3]) if row[3] is not None else None
        bound = Bound(row[0], row[1], row[2], caps, row[4])
        self._remember(response_id, bound)
        return bound

    async def owner_of(self, response_id: str) -> str | None:
        bound = await self.binding_of(response_id)
        return bound.customer_id if bound is not None else None

    @outlives_cancel  # gateway.db.outlive: a hung-up client cannot cut it short
    async def claim_unsettled(self, response_id: str) -> int | None:
        """The tokens its create was charged without usage, for the one caller
        (of every process and replica) that settles them; None for everyone
        else, and for a response that was charged its real usage at once.

        Claimed by a conditional update, so two retrievals racing on two
        replicas cannot both charge the difference."""
        known = self._known.get(response_id)
        if known is not None and known.unsettled_tokens is None:
            return None  # settled at its create, or claimed here before: no round trip
        row = StoredResponseOwner.response_id == response_id
        try:
            async with self._sessions() as session:
                charged = await session.scalar(
                    select(StoredResponseOwner.unsettled_tokens).where(row)
                )
                claimed = None if charged is None else await session.execute(
                    update(StoredResponseOwner)
                    .where(row, StoredResponseOwner.unsettled_tokens == charged)
                    .values(unsettled_tokens=None)
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            # Nothing was settled: the cache keeps the charge, so the next
            # retrieval here tries again rather than skipping the round trip.
            raise OwnersUnavailable(f"cannot settle {response_id}: {exc}") from exc
        if known is not None:
            self._remember(response_id, known._replace(unsettled_tokens=None))
        return charged if getattr(claimed, "rowcount", 0) == 1 else None

    @outlives_cancel  # gateway.db.outlive: a hung-up client cannot cut it short
    async def leave_unsettled(self, response_id: str, charged: int) -> None:
        """A create whose stream was cut (its client hung up) was charged
        ``charged`` without the usage its last event would have shown; in
        background mode the upstream goes on and the client retrieves the
        whole response later, so the first retrieval showing its usage settles
        the rest (``claim_unsettled``), as for a create answered ``queued``.

        Only a binding with nothing unsettled is marked: a claim already made
        is not undone. A retrieval in another process that cached the binding
        before this mark does not see it; the next one that reads it does."""
        row = StoredResponseOwner.response_id == response_id
        try:
            async with self._sessions() as session:
                await session.execute(
                    update(StoredResponseOwner)
                    .where(row, StoredResponseOwner.unsettled_tokens.is_(None))
                    .values(unsettled_tokens=charged)
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            raise OwnersUnavailable(f"cannot record what {response_id} was charged: {exc}") from exc
        known = self._known.get(response_id)
        if known is not None and known.unsettled_tokens is None:
            self._remember(response_id, known._replace(unsettled_tokens=charged))

    @outlives_cancel  # gateway.db.outlive: a hung-up client cannot cut it short
    async def record_context(self, response_id: str, tokens: int) -> None:
        """A streamed response's usage, seen at its end (its id was bound at its
        first event): what a request continuing it reserves."""
        try:
            async with self._sessions() as session:
                await session.execute(
                    update(StoredResponseOwner)
                    .where(StoredResponseOwner.response_id == response_id)
                    .values(context_tokens=tokens)
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            raise OwnersUnavailable(f"cannot record the context of {response_id}: {exc}") from exc
        known = self._known.get(response_id)
        if known is not None:
            self._remember(response_id, known._replace(context_tokens=tokens))

    @outlives_cancel  # gateway.db.outlive: a hung-up client cannot cut it short
    async def unbind(self, response_id: str) -> None:
        """Forget ``response_id`` (the upstream deleted it): it is not found from here.

        Other processes may still hold it in their cache; for them a later call
        on it is forwarded (to its own customer only) and the upstream answers
        404 for the deleted response, so nothing of it is reached."""
        self._known.pop(response_id, None)
        try:
            async with self._sessions() as session:
                await session.execute(
                    delete(StoredResponseOwner).where(
                        StoredResponseOwner.response_id == response_id
                    )
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            raise OwnersUnavailable(f"cannot forget the owner of {response_id}: {exc}") from exc


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
