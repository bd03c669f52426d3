"""Message Batch ids bound to their customer (gateway.proxy.batch_state), on a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.identity.tables import MessageBatchOwner
from gateway.proxy.batch_answer import BatchBinding
from gateway.proxy.batch_state import BatchOwners, Listed
from gateway.proxy.batch_visible import visible_page
from gateway.proxy.errors import ProxyError
from gateway.stages import AuditUnavailable
from tests.identity.conftest import Db, make_db, make_settings


def now() -> datetime:
    return datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    engine, sessions = await make_db(make_settings(tmp_path))
    yield Db(engine, sessions)
    await engine.dispose()


class DownAudit:
    """An audit log that cannot commit (the batch_bound event fails)."""

    async def record_event(self, kind: str, payload: dict[str, Any], *, wait: bool = True) -> str:
        raise AuditUnavailable("audit store cannot commit: down")


async def test_a_binding_the_audit_log_cannot_record_is_not_left_behind(db: Db) -> None:
    """The client is told 503 and never gets the id: a binding left in place
    would still list the batch to its creator, and serve its results, with
    no ``batch_bound`` record linking it to the decisions that created it."""
    owners = BatchOwners(db.sessions, now)
    binding = BatchBinding(owners, DownAudit(), "alice", ("haiku-lite",), "dec_1")  # type: ignore[arg-type]
    with pytest.raises(ProxyError) as withheld:
        await binding.answer({"id": "msgbatch_1", "results_url": None})
    assert withheld.value.status == 503
    assert await owners.binding_of("msgbatch_1") is None
    assert (await owners.page("alice", None, None, 20)).batches == []


class ShowsOnly:
    """A list policy stand-in: shows the batches of one model only."""

    def __init__(self, model: str) -> None:
        self.model = model

    def shows(self, batch: Listed) -> bool:
        return batch.models == (self.model,)


async def test_a_visible_page_pages_past_hidden_batches_both_ways(db: Db) -> None:
    """Hidden batches (a key scoped away from their model) do not end the
    list early, towards older (after_id) or newer (before_id) ones."""
    ticks = iter(range(100))
    owners = BatchOwners(db.sessions, lambda: now() + timedelta(seconds=next(ticks)))
    for n, model in enumerate(["haiku-lite", "fable-5", "fable-5", "fable-5", "haiku-lite"]):
        await owners.bind(f"b{n}", "alice", (model,), f"dec_{n}", frozenset())
    policy = ShowsOnly("haiku-lite")
    newest = await visible_page(owners, "alice", None, None, 1, policy)  # type: ignore[arg-type]
    assert ([b.batch_id for b in newest.batches], newest.has_more) == (["b4"], True)
    older = await visible_page(owners, "alice", "b4", None, 1, policy)  # type: ignore[arg-type]
    assert [b.batch_id for b in older.batches] == ["b0"]
    newer = await visible_page(owners, "alice", None, "b0", 1, policy)  # type: ignore[arg-type]
    assert [b.batch_id for b in newer.batches] == ["b4"]
    both = await visible_page(owners, "alice", None, None, 5, policy)  # type: ignore[arg-type]
    assert ([b.batch_id for b in both.batches], both.has_more) == (["b4", "b0"], False)


async def test_what_results_used_beyond_the_charge_is_covered_once_however_many_race(
    db: Db,
) -> None:
    """Downloads (on several replicas) finishing together each ask what to
    charge for the usage they saw: between them they charge it once. A
    download cut short charges what it relayed; a later whole one the rest."""
    owners = BatchOwners(db.sessions, now)
    groups: list[Any] = [{"capabilities": [], "reserved": 30}]
    await owners.bind("msgbatch_1", "alice", ("haiku-lite",), "dec_1", frozenset(), groups)
    await owners.bind("msgbatch_2", "alice", ("haiku-lite",), "dec_2", frozenset())
    assert await owners.cover("msgbatch_1", [25]) == []  # within its reservation
    assert [extra for _, extra in await owners.cover("msgbatch_1", [35])] == [5]  # cut short
    raced = await asyncio.gather(*(owners.cover("msgbatch_1", [50]) for _ in range(4)))
    assert sorted(extra for found in raced for _, extra in found) == [15], raced
    assert await owners.cover("msgbatch_1", [50]) == []
    assert await owners.cover("msgbatch_2", [50]) == []  # nothing reserved was kept
    async with db.sessions() as session:
        nulls = await session.scalar(
            select(func.count()).select_from(MessageBatchOwner).where(
                MessageBatchOwner.unsettled.is_(None))
        )
    assert nulls == 1  # SQL NULL, not a JSON null: the batch bound without any
