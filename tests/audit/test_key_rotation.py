"""A signing-key rotation, verified by an auditor who pins only some of the keys.

After a rotation the new key's first checkpoint links to the old key's last.
Pinned to the new key alone, the old key's checkpoints are ``unknown_key``
(documented), and nothing more: the link to a checkpoint that is present but
signed by a key not pinned is no evidence that checkpoints were deleted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.audit.export import Exporter
from gateway.audit.offline import verify_export
from gateway.audit.query import DecisionFilters
from gateway.audit.signing import Signer
from gateway.audit.verify import Problem, verify_log
from gateway.audit.writer import AuditWriter
from gateway.settings import Settings
from tests.audit.conftest import make_record


@pytest.fixture
async def rotated(writer: AuditWriter, settings: Settings,
                  engine: AsyncEngine) -> tuple[Signer, Signer]:
    """Seq 1..15 signed by the old key (checkpoints 0, 10, 15), 16..30 by the new."""
    for i in range(15):
        await writer.record(make_record(i))
    await writer.stop()  # signs its tail on the way out
    new = Signer.generate()
    restarted = AuditWriter(engine, settings, new)  # the same chain, restarted with the new key
    await restarted.start()
    try:
        for i in range(15, 30):
            await restarted.record(make_record(i))
    finally:
        await restarted.stop()
    return writer.signer, new


def _only_unknown_key(problems: list[Problem], other: Signer) -> None:
    assert {p.kind for p in problems} == {"unknown_key"}, [
        (p.kind, p.seq, p.message) for p in problems]
    assert all(other.fingerprint[:16] in p.message for p in problems)


async def test_database_pinned_to_one_key_reports_only_the_other_keys_checkpoints(
    rotated: tuple[Signer, Signer], engine: AsyncEngine,
) -> None:
    old, new = rotated
    assert (await verify_log(engine, trusted_keys=[old.public_raw, new.public_raw])).ok
    for pinned, other in ((new, old), (old, new)):
        _only_unknown_key((await verify_log(engine, trusted_keys=[pinned.public_raw])).problems,
                          other)


async def test_export_pinned_to_one_key_reports_only_the_other_keys_checkpoints(
    rotated: tuple[Signer, Signer], sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    old, new = rotated
    path = tmp_path / "all.jsonl"
    with path.open("wb") as fh:
        async for line in Exporter(sessions, DecisionFilters()).lines():
            fh.write(line)
    assert verify_export(path, trusted_keys=[old.public_raw, new.public_raw]).ok
    for pinned, other in ((new, old), (old, new)):
        _only_unknown_key(verify_export(path, trusted_keys=[pinned.public_raw]).problems, other)
