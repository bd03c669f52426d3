"""The policy text a recorded ``policy_version`` names, from the log itself.

A bundle's version is the SHA-256 of its canonical content
(``policy.loader.canonical_content``), and every ``policy_reload`` record
(written at each start and each swap) carries that content as
``payload.bundle``. So the policy that decided a request can be retrieved from
the log and proven to be the one named: its SHA-256 must equal the version.
Where the text is stored does not matter for the proof, only for having it; a
text that does not hash to its version is never returned.

Records written before this carried no ``bundle``: those versions are named
but not retrievable (``None``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.chain import parse_body
from gateway.audit.tables import audit_records

POLICY_KIND = "policy_reload"


def text_version(text: str) -> str:
    """The version a policy text proves: SHA-256 hex of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def carried_text(item: dict[str, Any]) -> tuple[str, str] | None:
    """``(version, text)`` from a ``policy_reload`` record's fields, if it carries a
    text that hashes to the version it names."""
    payload = item.get("payload")
    if item.get("kind") != POLICY_KIND or not isinstance(payload, dict):
        return None
    version, text = payload.get("new_version"), payload.get("bundle")
    if isinstance(version, str) and isinstance(text, str) and text_version(text) == version:
        return version, text
    return None


async def policy_texts(
    sessions: async_sessionmaker[AsyncSession], versions: Iterable[str] | None = None
) -> dict[str, str]:
    """Proven texts by version (all the log holds, or only ``versions``).

    Reads the ``policy_reload`` records only (a partial index: one per start
    or reload, however long the log).
    """
    wanted = set(versions) if versions is not None else None
    if wanted is not None and not wanted:
        return {}
    out: dict[str, str] = {}
    query = select(audit_records.c.body).where(audit_records.c.kind == POLICY_KIND)
    async with sessions() as session:
        for (body,) in (await session.execute(query.order_by(audit_records.c.id))).all():
            found = carried_text(parse_body(body))
            if found is not None and (wanted is None or found[0] in wanted):
                out.setdefault(*found)
    return out
