"""Ownership trees that decision records name by digest, stored once.

A record of a customer with a large ownership tree carries
``facts.principal.ownership_sha256`` (``gateway.identity.ownership_snapshot``)
instead of the tree; ``audit_ownership_snapshots`` holds the canonical JSON
once per digest. The writer inserts it in the same transaction as the first
record that names it (``batch.build_batch``; ``ON CONFLICT DO NOTHING`` when
another writer stored it first), so no committed record names a tree that is
not durable. A writer remembers which digests it saw committed
(``note_stored``) and does not insert them again.

Integrity does not rest on the table: the digest is inside the hashed,
chained record, so a stored tree is proven by re-hashing it. ``verify``
(``SnapshotCheck``) reports a named tree that is missing or does not hash to
its digest. Readers put the tree back for people and replays: the single
record view (``ownership_snapshot``, beside the hashed fields), the replay
stream, exports (the manifest's ``ownership_snapshots``, as ``policies``).
Records written before snapshots carry their tree inline and read as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from gateway.audit.problems import Problem
from gateway.audit.tables import audit_ownership_snapshots
from gateway.identity.ownership_snapshot import DIGEST_KEY

MAX_REMEMBERED = 100_000
"""Digests a writer remembers as stored; past that it forgets them all and
inserts each again once (a no-op on conflict): memory stays bounded."""
LOOKUP_CHUNK = 500


def note_stored(known: set[str], written: list[tuple[str, str]]) -> None:
    """Remember snapshots a commit made durable (``written``: ``(sha256, text)``)."""
    if len(known) + len(written) > MAX_REMEMBERED:
        known.clear()
    known.update(digest for digest, _ in written)


def named_digest(item: dict[str, Any]) -> str | None:
    """The digest a record's facts name, if any (a string, as the writer puts it)."""
    facts = item.get("facts")
    who = facts.get("principal") if isinstance(facts, dict) else None
    digest = who.get(DIGEST_KEY) if isinstance(who, dict) else None
    return digest if isinstance(digest, str) else None


def proven(digest: str, text: str) -> bool:
    return hashlib.sha256(text.encode("utf-8")).hexdigest() == digest


async def snapshot_texts(
    sessions: async_sessionmaker[AsyncSession], digests: Iterable[str]
) -> dict[str, str]:
    """Stored trees by digest, only those that hash to their digest."""
    wanted = sorted(set(digests))
    out: dict[str, str] = {}
    t = audit_ownership_snapshots
    async with sessions() as session:
        for at in range(0, len(wanted), LOOKUP_CHUNK):
            part = wanted[at:at + LOOKUP_CHUNK]
            rows = (await session.execute(
                select(t.c.sha256, t.c.body).where(t.c.sha256.in_(part)))).all()
            out.update((str(d), str(b)) for d, b in rows if proven(str(d), str(b)))
    return out


def manifest_trees(path: Path) -> dict[str, str]:
    """The proven trees of a JSONL export's manifest (its last line); none when
    the file has no manifest (records written by hand, as tests do)."""
    from gateway.audit.offline_read import load_manifest  # it imports this module (via export)

    try:
        _, manifest = load_manifest(path, None)
    except (ValueError, OSError):
        return {}
    carried = manifest.get("ownership_snapshots")
    if not isinstance(carried, dict):
        return {}
    return {d: t for d, t in carried.items()
            if isinstance(d, str) and isinstance(t, str) and proven(d, t)}


def inline_tree(item: dict[str, Any], texts: dict[str, str]) -> None:
    """Put the named tree back under ``facts.principal.ownership`` (for a replay:
    the item is no longer the hashed record). Left as it is when the tree is
    not in ``texts``: ``from_replay`` then refuses it rather than guess."""
    digest = named_digest(item)
    if digest is not None and digest in texts:
        item["facts"]["principal"]["ownership"] = orjson.loads(texts[digest])


async def snapshot_view(
    sessions: async_sessionmaker[AsyncSession], item: dict[str, Any]
) -> dict[str, Any] | None:
    """``{"sha256", "ownership"}`` of the tree a record names, for the record
    view (beside the hashed fields; ``ownership`` None when it is not stored)."""
    digest = named_digest(item)
    if digest is None:
        return None
    text = (await snapshot_texts(sessions, [digest])).get(digest)
    return {"sha256": digest, "ownership": None if text is None else orjson.loads(text)}


class SnapshotCheck:
    """``verify``: every digest a record names is stored and hashes to itself."""

    def __init__(self) -> None:
        self.named: dict[str, tuple[str, int, str]] = {}
        """digest -> (node_id, seq, record id) of the first record naming it."""

    def note(self, body: dict[str, Any], node_id: str, seq: int, record_id: str) -> None:
        if body.get("kind") != "decision":
            return
        digest = named_digest(body)
        if digest is not None and digest not in self.named:
            self.named[digest] = (node_id, seq, record_id)

    async def problems(self, conn: AsyncConnection) -> list[Problem]:
        t = audit_ownership_snapshots
        found: list[Problem] = []
        wanted = sorted(self.named)
        for at in range(0, len(wanted), LOOKUP_CHUNK):
            part = wanted[at:at + LOOKUP_CHUNK]
            rows = dict((await conn.execute(
                select(t.c.sha256, t.c.body).where(t.c.sha256.in_(part)))).all())
            await conn.rollback()
            for digest in part:
                node_id, seq, rid = self.named[digest]
                body = rows.get(digest)
                if body is None:
                    found.append(Problem(
                        "ownership_snapshot_missing", f"seq {seq}: the ownership tree it names "
                        f"({digest}) is not stored (deleted)", node_id, seq, rid))
                elif not proven(digest, str(body)):
                    found.append(Problem(
                        "ownership_snapshot_mismatch", f"seq {seq}: the stored ownership tree "
                        f"{digest} does not hash to its digest (edited)", node_id, seq, rid))
        return found


class ExportSnapshotCheck:
    """Offline verify: every tree an exported decision names is in the manifest's
    ``ownership_snapshots`` and hashes to its digest (the manifest is not
    hashed with the records; the digests in them are)."""

    def __init__(self) -> None:
        self.named: dict[str, tuple[int, str, int | None, Any]] = {}

    def note(self, item: dict[str, Any], lineno: int) -> None:
        digest = named_digest(item) if item.get("kind") == "decision" else None
        if digest is not None and digest not in self.named:
            seq = item.get("seq")
            self.named[digest] = (lineno, str(item.get("node_id")),
                                  seq if isinstance(seq, int) else None, item.get("id"))

    def check(self, manifest: dict[str, Any], problems: list[Problem]) -> list[str]:
        """Adds the problems; returns the digests proven."""
        carried = manifest.get("ownership_snapshots")
        carried = carried if isinstance(carried, dict) else {}
        ok: list[str] = []
        for digest, (lineno, node_id, seq, rid) in sorted(self.named.items()):
            text = carried.get(digest)
            if not isinstance(text, str):
                problems.append(Problem(
                    "ownership_snapshot_missing", f"line {lineno}: the ownership tree it names "
                    f"({digest}) is not in the manifest", node_id, seq, rid))
            elif not proven(digest, text):
                problems.append(Problem(
                    "ownership_snapshot_mismatch", f"line {lineno}: the manifest's ownership "
                    f"tree {digest} does not hash to its digest (altered)", node_id, seq, rid))
            else:
                ok.append(digest)
        return ok
