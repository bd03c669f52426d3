"""Response ids bound to their customer (gateway.proxy.stored_state and its store,
gateway.proxy.response_owners), on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.proxy.errors import ProxyError
from gateway.proxy.response_owners import OwnersUnavailable, ResponseOwners
from gateway.proxy.stored_state import (
    ResponseBinding,
    StreamedResponseId,
    answer_response_id,
    continued_ids,
)
from tests.identity.conftest import Db, make_db, make_settings


def now() -> datetime:
    return datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    engine, sessions = await make_db(make_settings(tmp_path))
    yield Db(engine, sessions)
    await engine.dispose()


async def test_a_binding_is_seen_by_every_process_sharing_the_database(db: Db) -> None:
    here, there = ResponseOwners(db.sessions, now), ResponseOwners(db.sessions, now)
    await here.bind("resp_1", "alice")
    assert await here.owner_of("resp_1") == "alice"
    assert await there.owner_of("resp_1") == "alice"  # another worker or replica
    assert await there.owner_of("resp_2") is None
    # The first binding stands: an id is never handed to another customer.
    await there.bind("resp_1", "mallory")
    assert await ResponseOwners(db.sessions, now).owner_of("resp_1") == "alice"


async def test_a_binding_keeps_its_model_and_a_delete_drops_it(db: Db) -> None:
    here, there = ResponseOwners(db.sessions, now), ResponseOwners(db.sessions, now)
    await here.bind("resp_1", "alice", "haiku-lite", capabilities=frozenset({"coding"}),
                    context_tokens=42)  # fmt: skip
    # The capabilities its create was decided with are read back elsewhere too,
    # and the context a continuation of it reserves.
    assert await there.binding_of("resp_1") == ("alice", "haiku-lite", None, {"coding"}, 42)
    await here.record_context("resp_1", 5005)  # a stream's usage, seen at its end
    assert (await here.binding_of("resp_1")).context_tokens == 5005  # type: ignore[union-attr]
    fresh = ResponseOwners(db.sessions, now)
    assert (await fresh.binding_of("resp_1")).context_tokens == 5005  # type: ignore[union-attr]
    await here.unbind("resp_1")
    assert await here.binding_of("resp_1") is None
    assert await ResponseOwners(db.sessions, now).binding_of("resp_1") is None


async def test_a_background_charge_is_settled_by_one_process_only(db: Db) -> None:
    here, there = ResponseOwners(db.sessions, now), ResponseOwners(db.sessions, now)
    await here.bind("resp_bg", "alice", "haiku-lite", unsettled_tokens=301)
    await here.bind("resp_fg", "alice", "haiku-lite")
    assert await there.binding_of("resp_bg") == ("alice", "haiku-lite", 301, None, None)
    claims = [await there.claim_unsettled("resp_bg"), await here.claim_unsettled("resp_bg"),
              await ResponseOwners(db.sessions, now).claim_unsettled("resp_bg")]
    assert claims == [301, None, None]
    assert await here.claim_unsettled("resp_fg") is None  # charged its usage at once


async def test_an_unreachable_database_withholds_the_answer(db: Db) -> None:
    owners = ResponseOwners(db.sessions, now)
    await db.engine.dispose()
    db_path = Path(str(db.engine.url.database))
    db_path.unlink()
    db_path.mkdir()  # the path is now a directory: every connection fails
    binding = ResponseBinding(owners, "alice", "haiku-lite", "d1")
    with pytest.raises(ProxyError) as withheld:
        await binding.answer({"id": "resp_9", "object": "response"})
    assert withheld.value.status == 503
    assert not await ResponseBinding(owners, "alice", "haiku-lite", "d2").streamed(
        b'event: response.created\ndata: {"type":"response.created","response":{"id":"r"}}\n\n'
    )


def test_the_streamed_id_is_found_across_chunk_boundaries_and_line_endings() -> None:
    event = (b'event: response.created\r\n'
             b'data: {"type":"response.created","response":{"id":"resp_x"}}\r\n\r\n')
    for cut in range(1, len(event)):
        watch = StreamedResponseId()
        first = watch.feed(event[:cut])
        found = first if watch.done else watch.feed(event[cut:])
        assert found == "resp_x" and watch.done, cut


def test_what_a_request_continues() -> None:
    assert continued_ids({"previous_response_id": "resp_1"}) == ("resp_1",)
    assert continued_ids({"conversation": {"id": "conv_1"}}) == ("conv_1",)
    assert continued_ids({"conversation": "conv_2", "previous_response_id": 7}) == ("7", "conv_2")
    assert continued_ids({"input": "hi"}) == ()
    assert answer_response_id({"id": "resp_3", "object": "response"}) == "resp_3"
    assert answer_response_id(None) is None  # not JSON


async def test_a_cut_streams_charge_is_left_for_one_retrieval_to_settle(db: Db) -> None:
    """A streamed create binds with nothing unsettled; cut, it is marked with
    what it was charged, and exactly one process claims it."""
    here, there = ResponseOwners(db.sessions, now), ResponseOwners(db.sessions, now)
    await here.bind("resp_cut", "alice", "haiku-lite")
    assert await here.claim_unsettled("resp_cut") is None  # nothing to settle yet
    await here.leave_unsettled("resp_cut", 301)
    assert await there.binding_of("resp_cut") == ("alice", "haiku-lite", 301, None, None)
    claims = [await here.claim_unsettled("resp_cut"), await there.claim_unsettled("resp_cut")]
    assert claims == [301, None]
    # A mark on a row that has something unsettled already leaves it as it is.
    await here.bind("resp_bg", "alice", "haiku-lite", unsettled_tokens=50)
    await there.leave_unsettled("resp_bg", 999)
    assert await ResponseOwners(db.sessions, now).claim_unsettled("resp_bg") == 50


async def test_a_claim_the_database_could_not_answer_is_tried_again(db: Db) -> None:
    """A claim that failed (the database unreachable for a moment) settled
    nothing: the next retrieval in the same process must try again, not take
    its own cache's word that the charge was settled."""
    down = False

    def sessions() -> object:
        if down:
            raise OSError("database unreachable")
        return db.sessions()

    here = ResponseOwners(sessions, now)  # type: ignore[arg-type]
    await here.bind("resp_bg", "alice", "haiku-lite", unsettled_tokens=301)
    down = True
    with pytest.raises(OwnersUnavailable):
        await here.claim_unsettled("resp_bg")
    down = False
    assert await here.claim_unsettled("resp_bg") == 301
