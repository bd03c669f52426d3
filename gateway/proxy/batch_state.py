"""Message Batches kept to the customer that created them.

Every customer reaches the upstream with the gateway's one credential, so to
the upstream every batch belongs to one account: without this, any customer
could read any other customer's batch results by id, and the upstream's list
would show everyone's batches to everyone.

So the gateway binds each batch id it relays to the customer it relayed it
to, with the models the batch's requests named and the union of the
capabilities they were decided with (calls on it by id are decided with
them: a directive added since that refuses one of them refuses its
results) and what its create reserved (``gateway.proxy.batch_charge``),
before the create's answer reaches the client
(``gateway.proxy.batch_answer``). Calls on a batch by id by anyone else, or
on an id never relayed, are 404 and never forwarded
(``gateway.proxy.batch_decide``); the list is served from these bindings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple, cast

import orjson
from sqlalchemy import Text, and_, delete, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.outlive import outlives_cancel
from gateway.identity.tables import MessageBatchOwner
from gateway.proxy.batch_charge import ReservedGroup
from gateway.stages import StageUnavailable

COVER_ATTEMPTS = 5
"""Compare-and-set rounds of ``BatchOwners.cover`` against concurrent downloads."""
BATCH_NOT_FOUND_RULE = "message-batch-not-found"
"""The rule id a call on a batch that is not the caller's is recorded with."""


class BatchOwnersUnavailable(StageUnavailable):
    component = "database"


class BatchBound(NamedTuple):
    """Who a batch was relayed to, and what models its requests named."""

    customer_id: str
    models: tuple[str, ...]
    decision_id: str
    capabilities: frozenset[str] | None = None
    """The union of its requests' capabilities; None for a binding from
    before they were recorded (migration d2e6b8a4c1f7): the models' own only."""
    unsettled: list[ReservedGroup] | None = None
    """What its create reserved per quota group, and what results downloads
    charged beyond it so far (``gateway.proxy.batch_charge``); None: not kept."""


class Listed(NamedTuple):
    """One batch of a page: what deciding whether to list it needs."""

    batch_id: str
    models: tuple[str, ...]
    capabilities: frozenset[str] | None


class BatchPage(NamedTuple):
    batches: list[Listed]
    """Newest first, as the upstream lists them."""
    has_more: bool


class BatchOwners:
    """Which customer each relayed Message Batch id belongs to (database only:
    batch calls are rare next to messages, and a cache would outlive a delete
    on another replica)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime]
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    @outlives_cancel  # gateway.db.outlive: a hung-up client cannot cut it short
    async def bind(
        self,
        batch_id: str,
        customer_id: str,
        models: tuple[str, ...],
        decision_id: str,
        capabilities: frozenset[str] | None = None,
        unsettled: list[ReservedGroup] | None = None,
    ) -> None:
        """Record that ``batch_id`` was relayed to ``customer_id`` (the first binding stands)."""
        try:
            async with self._sessions() as session:
                session.add(MessageBatchOwner(
                    batch_id=batch_id, customer_id=customer_id, models=list(models),
                    decision_id=decision_id, created_at=self._clock(),
                    capabilities=sorted(capabilities) if capabilities is not None else None,
                    unsettled=unsettled or None,
                ))  # fmt: skip
                await session.commit()
        except IntegrityError:
            return  # the upstream does not reuse ids; the first binding is read back later
        except (SQLAlchemyError, OSError) as exc:
            raise BatchOwnersUnavailable(f"cannot record the owner of {batch_id}: {exc}") from exc

    async def binding_of(self, batch_id: str) -> BatchBound | None:
        try:
            async with self._sessions() as session:
                row = await session.get(MessageBatchOwner, batch_id)
        except (SQLAlchemyError, OSError) as exc:
            raise BatchOwnersUnavailable(f"cannot read the owner of {batch_id}: {exc}") from exc
        if row is None:
            return None
        caps = frozenset(row.capabilities) if row.capabilities is not None else None
        unsettled = cast("list[ReservedGroup] | None", row.unsettled)  # as bound
        return BatchBound(row.customer_id, tuple(row.models), row.decision_id, caps, unsettled)

    @outlives_cancel  # gateway.db.outlive: a hung-up client cannot cut it short
    async def cover(self, batch_id: str, used: list[int]) -> list[tuple[ReservedGroup, int]]:
        """What a results download that showed ``used`` tokens per group must
        charge: each group's use beyond what it has been charged so far (its
        reservation, and what earlier downloads charged), recorded as charged
        before it is returned; empty when there is nothing (more) to charge.

        A compare-and-set on the column's text, retried when another download
        (another process or replica) moved it in between: two downloads that
        saw the same usage charge it once between them, and a download cut
        short charges what it relayed, the rest left to a later one."""
        row = MessageBatchOwner.batch_id == batch_id
        stored = sql_cast(MessageBatchOwner.unsettled, Text)
        try:
            for _ in range(COVER_ATTEMPTS):
                async with self._sessions() as session:
                    seen = await session.scalar(select(stored).where(row))
                    loaded = orjson.loads(seen) if seen else None
                    groups = cast("list[ReservedGroup]", loaded if isinstance(loaded, list) else [])
                    if len(groups) != len(used):
                        return []  # none kept (bound before they were), or not this batch's
                    extras = [max(u - g["reserved"] - g.get("charged", 0), 0)
                              for u, g in zip(used, groups, strict=True)]  # fmt: skip
                    if not any(extras):
                        return []
                    covered = [{**g, "charged": g.get("charged", 0) + extra}
                               for g, extra in zip(groups, extras, strict=True)]  # fmt: skip
                    moved = await session.execute(
                        update(MessageBatchOwner)
                        .where(row, stored == seen)
                        .values(unsettled=covered)
                    )
                    await session.commit()
                if getattr(moved, "rowcount", 0) == 1:
                    return list(zip(groups, extras, strict=True))
        except (SQLAlchemyError, OSError, orjson.JSONDecodeError) as exc:
            raise BatchOwnersUnavailable(f"cannot settle {batch_id}: {exc}") from exc
        raise BatchOwnersUnavailable(f"cannot settle {batch_id}: it kept moving")

    @outlives_cancel  # gateway.db.outlive: a hung-up client cannot cut it short
    async def unbind(self, batch_id: str) -> None:
        """Forget ``batch_id`` (the upstream deleted it)."""
        try:
            async with self._sessions() as session:
                await session.execute(
                    delete(MessageBatchOwner).where(MessageBatchOwner.batch_id == batch_id)
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            raise BatchOwnersUnavailable(f"cannot forget the owner of {batch_id}: {exc}") from exc

    async def page(
        self, customer_id: str, after_id: str | None, before_id: str | None, limit: int
    ) -> BatchPage:
        """One page of ``customer_id``'s batches, newest first; ``after_id``
        pages towards older ones, ``before_id`` towards newer (Anthropic's
        cursors). A cursor that is not the caller's gives an empty page."""
        table = MessageBatchOwner
        order_desc = (table.created_at.desc(), table.batch_id.desc())
        try:
            async with self._sessions() as session:
                query = select(table.batch_id, table.models, table.capabilities).where(
                    table.customer_id == customer_id
                )
                cursor_id = after_id or before_id
                if cursor_id is not None:
                    cursor = await session.get(table, cursor_id)
                    if cursor is None or cursor.customer_id != customer_id:
                        return BatchPage([], False)
                    at, key = cursor.created_at, cursor.batch_id
                    same_time = table.created_at == at
                    if after_id is not None:
                        older = or_(table.created_at < at, and_(same_time, table.batch_id < key))
                        query = query.where(older).order_by(*order_desc)
                    else:
                        newer = or_(table.created_at > at, and_(same_time, table.batch_id > key))
                        query = query.where(newer).order_by(table.created_at, table.batch_id)
                else:
                    query = query.order_by(*order_desc)
                rows = (await session.execute(query.limit(limit + 1))).all()
        except (SQLAlchemyError, OSError) as exc:
            message = f"cannot list the batches of {customer_id}: {exc}"
            raise BatchOwnersUnavailable(message) from exc
        has_more = len(rows) > limit
        batches = [
            Listed(str(row[0]), tuple(row[1]), frozenset(row[2]) if row[2] is not None else None)
            for row in rows[:limit]
        ]
        if after_id is None and before_id is not None:
            batches.reverse()
        return BatchPage(batches, has_more)
