"""Message Batch ids bound to their customer (gateway.proxy.batch_state), on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.proxy.batch_state import BatchBinding, BatchOwners
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
