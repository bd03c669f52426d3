"""``ProbeLimiter`` (``gateway.proxy.probes``) against a real audit writer: the
refusals past the limit become one summary record per address and window,
with the id their 429s carried; a summary that cannot be written is kept and
written later, never lost or written twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.audit.query import get_decision
from gateway.audit.signing import Signer
from gateway.audit.tables import audit_records
from gateway.audit.writer import AuditWriter
from gateway.proxy.probe_counts import ProbeCounts
from gateway.proxy.probes import KIND, ProbeLimiter
from gateway.settings import Settings

IP = "198.51.100.7"
START = 1_800_000_000  # a window boundary for a 60 s window


async def _summaries(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(audit_records).where(audit_records.c.kind == KIND)
        return int(await session.scalar(query) or 0)


async def test_summary_survives_an_audit_outage_and_is_written_once(
    engine: AsyncEngine, settings: Settings, signer: Signer,
    sessions: async_sessionmaker[AsyncSession],
) -> None:  # fmt: skip
    now = [START + 1.0]
    writer = AuditWriter(engine, settings, signer)  # not started yet: "down"
    limiter = ProbeLimiter(2, 60, ProbeCounts(None), writer, clock=lambda: now[0])
    answers: list[Any] = []
    for path in ["/v1/chat/completions"] * 4 + ["/v1/nope"]:
        answers.append(await limiter.admit(IP, 404 if path == "/v1/nope" else 401, path))
    assert answers[:2] == [None, None]
    ids = {a.record_id for a in answers[2:]}
    assert len(ids) == 1 and all(a.retry_after == 59 for a in answers[2:]), answers
    # Another address has its own count.
    assert await limiter.admit("198.51.100.8", 401, "/v1/messages") is None

    now[0] = START + 61.0
    await limiter.flush()  # the writer is down: kept, not lost
    await writer.start()
    try:
        await limiter.flush()
        await limiter.flush()  # nothing left: not written twice
        record = await get_decision(sessions, ids.pop())
    finally:
        await writer.stop()
    assert record is not None and record["kind"] == KIND, record
    assert record["payload"] == {
        "client_ip": IP, "limit": 2, "refused": 3,
        "window_start": "2027-01-15T08:00:00Z", "window_end": "2027-01-15T08:01:00Z",
        "by_status": {"401": 2, "404": 1},
        "by_endpoint": {"/v1/chat/completions": 2, "/v1/nope": 1},
        "first_at": "2027-01-15T08:00:01Z", "last_at": "2027-01-15T08:00:01Z",
    }  # fmt: skip
    assert await _summaries(sessions) == 1


async def test_many_addresses_summaries_share_group_commits(
    engine: AsyncEngine, settings: Settings, signer: Signer,
    sessions: async_sessionmaker[AsyncSession],
) -> None:  # fmt: skip
    """A botnet's window ends with one summary per address: written together,
    not one commit after another (which took a commit's latency each)."""
    now = [START + 1.0]
    writer = AuditWriter(engine, settings, signer)
    await writer.start()
    limiter = ProbeLimiter(1, 60, ProbeCounts(None), writer, clock=lambda: now[0])
    addresses = [f"203.0.113.{i}" for i in range(1, 51)]
    try:
        for ip in addresses:
            assert await limiter.admit(ip, 401, "/v1/chat/completions") is None
            assert await limiter.admit(ip, 401, "/v1/chat/completions") is not None
        now[0] = START + 61.0
        before = writer.stats.batches
        await limiter.flush()
        commits = writer.stats.batches - before
    finally:
        await writer.stop()
    assert await _summaries(sessions) == len(addresses)
    assert commits < len(addresses) / 5, commits
