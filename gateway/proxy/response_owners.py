"""The store of response bindings (``gateway.proxy.stored_state``): which
customer each relayed Responses API id belongs to, what model made it and
what its create was decided and charged with.

The bindings live in the database (``stored_response_owners``), shared by
every worker and replica; each process keeps the ones it has seen in a
bounded cache, so continuing a conversation costs a database read only on
another process's first sight of it.

Separate from ``stored_state``, which says why ids are bound and binds each
answer's id as it is relayed: this is the table and its cache, every read and
write of them, used also by the calls on a stored response by id
(``gateway.proxy.stored_routes``) and the settling of what a response used
(``gateway.proxy.settle``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.outlive import outlives_cancel
from gateway.identity.tables import StoredResponseOwner
from gateway.stages import StageUnavailable

CACHE_SIZE = 10_000
"""Bindings remembered per process (~1.6 MB at most); older ones are read back."""


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
