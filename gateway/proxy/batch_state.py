"""Message Batches kept to the customer that created them.

Every customer reaches the upstream with the gateway's one credential, so to
the upstream every batch belongs to one account: without this, any customer
could read any other customer's batch results by id, and the upstream's list
would show everyone's batches to everyone.

So the gateway binds each batch id it relays to the customer it relayed it
to, with the models the batch's requests named and the union of the
capabilities they were decided with (calls on it by id are decided with
them: a directive added since that refuses one of them refuses its
results), before the create's answer
reaches the client (``BatchBinding.answer``). Calls on a batch by id by
anyone else, or on an id never relayed, are 404 and never forwarded
(``gateway.proxy.batch_decide``); the list is served from these bindings.

The upstream's ``results_url`` is absolute and names the upstream's host: a
client that followed it would go around the gateway (and without a
credential the upstream takes). Every batch object relayed has it rewritten
to the gateway's own results route, relative, so the SDK resolves it against
the address it reached the gateway at.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, cast

import orjson
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.identity.tables import MessageBatchOwner
from gateway.proxy.batch_charge import ReservedGroup
from gateway.proxy.batch_routes import BATCHES_ROUTE, MAX_BATCH_ID_CHARS
from gateway.proxy.errors import ProxyError
from gateway.stages import AuditSink, StageUnavailable

if TYPE_CHECKING:
    from gateway.proxy.exchange import Exchange
    from gateway.services import Services

log = logging.getLogger(__name__)

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
    """What its create reserved per quota group, until a results download
    charged what it used beyond (``gateway.proxy.batch_charge``); then None."""


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

    async def claim_unsettled(self, batch_id: str) -> list[ReservedGroup] | None:
        """What the create reserved, for the one caller (of every process and
        replica) that charges what the results used beyond it; None for
        everyone else. Claimed by a conditional update (set to null), so two
        downloads racing on two replicas cannot both charge it."""
        row = MessageBatchOwner.batch_id == batch_id
        try:
            async with self._sessions() as session:
                found = await session.scalar(select(MessageBatchOwner.unsettled).where(row))
                claimed = None if found is None else await session.execute(
                    update(MessageBatchOwner)
                    .where(row, MessageBatchOwner.unsettled.is_not(None))
                    .values(unsettled=None)
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            raise BatchOwnersUnavailable(f"cannot settle {batch_id}: {exc}") from exc
        groups: list[ReservedGroup] | None = found
        return groups if getattr(claimed, "rowcount", 0) == 1 else None

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


def results_path(batch_id: str) -> str:
    return f"{BATCHES_ROUTE}/{batch_id}/results"


def with_gateway_results_url(doc: object) -> dict[str, object] | None:
    """A batch object with its ``results_url`` pointing at the gateway; None
    when ``doc`` is no batch object with one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results_url"), str):
        return None
    batch_id = doc.get("id")
    if not isinstance(batch_id, str):
        return None
    return {**doc, "results_url": results_path(batch_id)}


def rewritten_batch(doc: object) -> bytes | None:
    """``with_gateway_results_url``, serialised; None: the upstream's bytes go
    out as they came."""
    rewritten = with_gateway_results_url(doc)
    return orjson.dumps(rewritten) if rewritten is not None else None


class BatchBinding:
    """Binds a created batch's id to its caller before the client sees it,
    and writes the binding into the audit log (batch id -> create decision):
    the create's inner records were committed before the id existed."""

    def __init__(
        self,
        owners: BatchOwners,
        audit: AuditSink,
        customer_id: str,
        models: tuple[str, ...],
        decision_id: str,
        capabilities: frozenset[str] = frozenset(),
        unsettled: list[ReservedGroup] | None = None,
    ) -> None:
        self._owners = owners
        self._capabilities = capabilities
        self._unsettled = unsettled
        self._audit = audit
        self._customer_id = customer_id
        self._models = models
        self._decision_id = decision_id

    async def answer(self, parsed: object) -> bytes | None:
        """The create's answer (parsed): bound, or a 503 and the answer withheld."""
        batch_id = parsed.get("id") if isinstance(parsed, dict) else None
        if not isinstance(batch_id, str) or not 0 < len(batch_id) <= MAX_BATCH_ID_CHARS:
            return None
        try:
            # The audit log first: a binding whose record could not be
            # committed would still list the batch to its creator and serve
            # its results, with nothing in the log linking it to the decisions
            # that made it. A record whose binding then fails binds nothing.
            await self._audit.record_event("batch_bound", {
                "batch_id": batch_id, "customer_id": self._customer_id,
                "decision_id": self._decision_id, "models": list(self._models),
            })  # fmt: skip
            await self._owners.bind(
                batch_id, self._customer_id, self._models, self._decision_id, self._capabilities,
                self._unsettled,
            )
        except StageUnavailable as exc:
            log.error("%s; batch %s created for %s withheld", exc, batch_id, self._decision_id)
            raise ProxyError(
                503,
                "the gateway could not record who owns this batch; it was not delivered",
                code="database_unavailable",
                headers={"retry-after": "1"},
            ) from None
        return rewritten_batch(parsed)


def before_batch_answer(
    services: Services, ex: Exchange, status: int
) -> Callable[[object], Awaitable[bytes | None]] | None:
    """What a Message Batches answer needs before the client sees it: a new
    batch bound to its caller; a batch object's ``results_url`` pointed at
    the gateway; a deleted batch's binding dropped. Results pass as they came."""
    call = ex.batch
    owners = services.batch_owners
    if call is None or status >= 300 or owners is None:
        return None
    if call.operation == "create":
        assert ex.principal is not None and ex.batch_facts is not None
        models = tuple(ex.batch_facts.get("models") or ())
        # The union of its requests' capabilities (``_decide_create``).
        caps = ex.decision.capabilities if ex.decision is not None else frozenset()
        return BatchBinding(
            owners, services.audit, ex.principal.customer_id, models, ex.id, caps,
            ex.batch_reserved,
        ).answer
    if call.operation in ("retrieve", "cancel"):
        return _rewrite
    if call.operation == "delete" and call.batch_id is not None:
        batch_id = call.batch_id

        async def forget(_: object) -> None:
            # The upstream confirmed the delete: from here the id is not found
            # at the gateway. If the binding cannot be dropped the client is
            # still told of the delete, which happened; a later call by its
            # owner is forwarded and the upstream answers 404.
            try:
                await owners.unbind(batch_id)
            except StageUnavailable as exc:
                log.error("%s after %s", exc, ex.id)
            return None

        return forget
    return None


async def _rewrite(doc: object) -> bytes | None:
    return rewritten_batch(doc)
