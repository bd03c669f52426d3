"""Who each upstream item and container id was relayed to (``gateway.proxy.references``).

The bindings live in the database (``relayed_object_owners``), shared by every
worker and replica; each process keeps the ones it has seen in a bounded
cache, so naming an id costs a database read only on another process's first
sight of it. An id is bound once: the upstream does not reuse ids, and the
first binding stands.

A streamed answer's ids are bound before its terminal event goes out: those
in its last event with usage, and those in the earlier events its tap kept
for them (files code execution wrote, a chat answer's audio, a Responses
item or cited file as it is added). A stream that ends without that event (a
cut, the client gone, the upstream breaking off) binds them as it ends, the
write running to its end if the client has left. So
its client may see them a moment before they are bound; a request naming one
in that moment is refused 404, never forwarded for someone else. An id that
cannot be bound (database down) is only ever refused: the failure is logged,
and the answer still goes out.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.outlive import outlives_cancel
from gateway.identity.tables import RelayedObjectOwner
from gateway.proxy.errors import ProxyError
from gateway.proxy.references import (
    AUDIO,
    CHECKED_WHEN_LISTED,
    CITED_FILE,
    CONTAINER,
    FILE,
    ITEM,
    NEVER_BOUND,
    PROMPT,
    SKILL,
    VECTOR_STORE,
    Reference,
)
from gateway.proxy.relayed_ids import answer_references
from gateway.stages import StageUnavailable

if TYPE_CHECKING:
    from gateway.proxy.exchange import Exchange

log = logging.getLogger(__name__)

CACHE_SIZE = 20_000
"""Bindings remembered per process; older ones are read back."""
ITEM_RULE = "stored-item-not-found"
CONTAINER_RULE = "container-not-found"
_REFUSALS = {
    ITEM: (ITEM_RULE, "Item"),
    CONTAINER: (CONTAINER_RULE, "Container"),
    FILE: ("file-not-found", "File"),
    AUDIO: ("audio-not-found", "Audio"),
    VECTOR_STORE: ("vector-store-not-found", "Vector store"),
    SKILL: ("skill-not-found", "Skill"),
    PROMPT: ("prompt-not-found", "Prompt"),
}
"""Per kind: the rule a refusal is recorded under, and what the 404 calls it."""
EVERYONE = "*"
"""The owner of a file bound for every customer (``references.CITED_FILE``):
no customer id can be it (``gateway.kyc.schemas.ID_PATTERN`` starts with a
letter or digit)."""


def _owned(references: Iterable[Reference], customer_id: str) -> dict[Reference, str]:
    """Who each relayed id is bound to: the caller, but a file a file search
    cited is everyone's. The first of an id's kinds stands."""
    owned: dict[Reference, str] = {}
    for kind, object_id in references:
        if kind == CITED_FILE:
            owned.setdefault((FILE, object_id), EVERYONE)
        else:
            owned.setdefault((kind, object_id), customer_id)
    return owned


def _dialect_insert(dialect: str) -> Any:
    """The dialect's INSERT (``ON CONFLICT DO NOTHING``), imported when first
    used: importing SQLAlchemy's PostgreSQL dialect costs a SQLite worker
    ~2.4 MB of memory for nothing."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


class ReferenceOwnersUnavailable(StageUnavailable):
    component = "database"


class ReferenceOwners:
    """Which customer each relayed item and container id belongs to."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        shared: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._shared = dict(shared or {})
        """Per kind, the ids the operator shares with every customer
        (``GATEWAY_SHARED_FILE_IDS``, ``_VECTOR_STORE_IDS``, ``_SKILL_IDS``)."""
        self._known: OrderedDict[Reference, str] = OrderedDict()

    def _remember(self, reference: Reference, customer_id: str) -> None:
        self._known[reference] = customer_id
        self._known.move_to_end(reference)
        if len(self._known) > CACHE_SIZE:
            self._known.popitem(last=False)

    @outlives_cancel  # bound at a stream's end, when clients hang up (gateway.db.outlive)
    async def bind(self, references: Iterable[Reference], customer_id: str) -> None:
        """Record that ``references`` were relayed to ``customer_id`` (a cited
        file, to ``EVERYONE``); ids bound already keep their first owner."""
        new = {r: owner for r, owner in _owned(references, customer_id).items()
               if r not in self._known}  # fmt: skip
        if not new:
            return
        now = self._clock()
        rows = [{"kind": kind, "object_id": object_id, "customer_id": owner,
                 "created_at": now} for (kind, object_id), owner in new.items()]  # fmt: skip
        try:
            async with self._sessions() as session:
                insert = _dialect_insert(session.get_bind().dialect.name)
                inserted = (await session.execute(
                    insert(RelayedObjectOwner).values(rows).on_conflict_do_nothing()
                    .returning(RelayedObjectOwner.kind, RelayedObjectOwner.object_id)
                )).all()  # fmt: skip
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            message = f"cannot record the owner of {next(iter(new))[1]}: {exc}"
            raise ReferenceOwnersUnavailable(message) from exc
        # Only the rows inserted are as written: an id bound before keeps its
        # first owner (read back when it is next named).
        for kind, object_id in inserted:
            self._remember((kind, object_id), new[(kind, object_id)])

    async def owners_of(self, references: list[Reference]) -> dict[Reference, str]:
        """The owners of ``references`` (unbound ones absent), cached."""
        owners = {r: self._known[r] for r in references if r in self._known}
        missing = [r for r in references if r not in owners]
        if not missing:
            return owners
        key = tuple_(RelayedObjectOwner.kind, RelayedObjectOwner.object_id)
        try:
            async with self._sessions() as session:
                rows = (await session.execute(
                    select(RelayedObjectOwner.kind, RelayedObjectOwner.object_id,
                           RelayedObjectOwner.customer_id).where(key.in_(missing))
                )).all()  # fmt: skip
        except (SQLAlchemyError, OSError) as exc:
            message = f"cannot read the owner of {missing[0][1]}: {exc}"
            raise ReferenceOwnersUnavailable(message) from exc
        for kind, object_id, customer_id in rows:
            owners[(kind, object_id)] = customer_id
            self._remember((kind, object_id), customer_id)
        return owners

    async def refuse_foreign(
        self, ex: Exchange, customer_id: str, references: tuple[Reference, ...]
    ) -> None:
        """Raise 404 (recorded on ``ex``) for the first reference not bound to
        ``customer_id`` (or to ``EVERYONE``) nor shared: another's and an
        unknown id get the same answer. Vector stores, skills and prompts are
        never bound (no customer can make one through the gateway): only
        shared ones are named; prompts only once the operator lists them."""
        shared = self._shared
        bound = [r for r in dict.fromkeys(references)
                 if r[1] not in shared.get(r[0], ()) and r[0] not in NEVER_BOUND]  # fmt: skip
        owners = await self.owners_of(bound) if bound else {}
        for reference in references:
            kind, object_id = reference
            if object_id in shared.get(kind, ()) or owners.get(reference) in (
                customer_id, EVERYONE
            ):
                continue
            if kind in CHECKED_WHEN_LISTED and kind not in shared:
                continue
            rule, what = _REFUSALS[kind]
            message = f"{what} with id '{object_id[:128]}' not found."
            ex.refuse(rule, message)
            raise ProxyError(404, message, code=rule)


class ReferenceBinding:
    """Binds the ids one answer relays to its caller."""

    def __init__(
        self,
        owners: ReferenceOwners,
        customer_id: str,
        decision_id: str,
        marker: bytes | None = None,
    ) -> None:
        self._owners = owners
        self._customer_id = customer_id
        self._decision_id = decision_id
        self.marker = marker
        """Bytes that mark a stream event showing ids before its last one (an
        Anthropic code execution result, a chat chunk's audio): such events
        are parsed by the stream's tap, which keeps their ids
        (``SseUsageTap.marked``), bound too."""

    async def relayed(self, doc: object) -> None:
        """A complete answer, or a stream's last event with usage (parsed)."""
        await self.relayed_all((doc,))

    async def relayed_all(self, docs: Iterable[object]) -> None:
        """The events of a stream that show ids, bound at once."""
        await self.bind_all([r for doc in docs for r in answer_references(doc)])

    async def bind_all(self, references: list[Reference]) -> None:
        """Ids found in what was relayed (a batch's results lines, say)."""
        if not references:
            return
        try:
            await self._owners.bind(references, self._customer_id)
        except ReferenceOwnersUnavailable as exc:
            # Unbound ids are refused to everyone, their owner included: loud, never open.
            log.error("%s; ids relayed by %s cannot be named again", exc, self._decision_id)
