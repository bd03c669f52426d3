"""How a decision record states the customer's ownership: inline, or by digest.

An ownership tree may hold 256 entries with 512-character names: ~140 KB,
which every decision record of that customer carried, hash-chained and kept
for years. A tree whose canonical JSON is over ``INLINE_MAX_BYTES`` is instead
*named* by the record (``ownership_sha256``: SHA-256 of that canonical JSON)
and stored once per distinct digest in ``audit_ownership_snapshots``, in the
same transaction as the first record that names it
(``gateway.audit.ownership_snapshots``). The record is hashed with the
digest in it, so the tree is as tamper-evident as if it were inline: a stored
tree that does not hash to the digest is detected by ``gateway audit verify``.
Smaller trees (and an individual's empty list) stay inline, byte for byte as
before.

Computed once per cache load (``identity.store.principal_from``), never per
request: a request reuses the fields and the canonical text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.identity.ownership import Ownership, owner_countries, to_json

INLINE_MAX_BYTES = 1024
"""A tree whose canonical JSON is longer is recorded by digest (a flat list of
a dozen owners, or a short chain, stays inline)."""
DIGEST_KEY = "ownership_sha256"
COUNTRIES_KEY = "ownership_countries"


def canonical_tree(owners: tuple[Ownership, ...]) -> bytes:
    """The canonical JSON of a tree (the audit chain's: sorted keys, no spaces)."""
    return orjson.dumps(to_json(owners), option=orjson.OPT_SORT_KEYS)


def tree_digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


@dataclass(frozen=True, slots=True)
class OwnershipSnapshot:
    """A tree stored once and named by its digest."""

    sha256: str
    text: str
    """The canonical JSON whose SHA-256 is ``sha256``: what is stored."""


@dataclass(frozen=True, slots=True)
class RecordedOwnership:
    """The ``facts.principal`` fields that state the ownership, and the
    snapshot they name (None when the tree is inline)."""

    fields: dict[str, Any]
    snapshot: OwnershipSnapshot | None = None


INLINE_EMPTY = RecordedOwnership({"ownership": []})


def recorded_ownership(owners: tuple[Ownership, ...]) -> RecordedOwnership:
    if not owners:
        return INLINE_EMPTY
    text = canonical_tree(owners)
    if len(text) <= INLINE_MAX_BYTES:
        return RecordedOwnership({"ownership": to_json(owners)})
    digest = tree_digest(text)
    # Every country along a positive share, at any level: control by a set needs
    # one of them in it, so a reader sees at a glance which sets could apply.
    countries = sorted(set(owner_countries(owners)))
    return RecordedOwnership({DIGEST_KEY: digest, COUNTRIES_KEY: countries},
                             OwnershipSnapshot(digest, text.decode("utf-8")))
