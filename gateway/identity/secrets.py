"""Credential format and hashing shared by gateway API keys and admin tokens.

A credential is ``<kind>_<id>_<secret>``: ``gk_`` for gateway keys, ``gat_``
for admin-API tokens. The id is public (it names the row, appears in audit
records and logs); the secret is 256 random bits in lower-case base32, so it
survives double-click selection and contains no ``_``.

Why salted SHA-256 and not a slow KDF: the secret is 256 bits of CSPRNG output,
so brute force against a leaked hash is infeasible whatever the hash speed,
while a slow KDF would cost milliseconds on every cache miss of the hot path.
The per-row random salt (stored beside the hash) makes equal secrets hash
differently and defeats precomputation; we chose it over a server pepper
because a pepper is one more secret every replica and the CLI must share and
rotate. Comparison is ``hmac.compare_digest`` (constant time).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SECRET_BYTES = 32
ID_BYTES = 8


@dataclass(frozen=True, slots=True)
class ParsedCredential:
    kind: str
    id: str
    secret: str


@dataclass(frozen=True, slots=True)
class NewCredential:
    id: str
    secret: str
    salt: str
    hash: str
    clear: str
    """The full credential, shown to its owner once and never stored."""

    @property
    def prefix(self) -> str:
        """``<kind>_<id>``: enough to recognise the credential, and none of its
        secret (not even a few characters: only a hash of the secret is kept)."""
        return self.clear[: self.clear.index("_") + 1] + self.id


def new_id() -> str:
    return secrets.token_hex(ID_BYTES)


def new_secret() -> str:
    raw = secrets.token_bytes(SECRET_BYTES)
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


def verify_secret(salt: str, expected_hash: str, secret: str) -> bool:
    return hmac.compare_digest(hash_secret(salt, secret), expected_hash)


def mint(kind: str, credential_id: str | None = None) -> NewCredential:
    """A fresh credential of ``kind`` (``gk`` or ``gat``) with its salted hash."""
    cid = credential_id or new_id()
    if "_" in cid or not cid:
        raise ValueError("credential id must be non-empty and contain no '_'")
    secret = new_secret()
    salt = secrets.token_hex(16)
    return NewCredential(
        id=cid,
        secret=secret,
        salt=salt,
        hash=hash_secret(salt, secret),
        clear=f"{kind}_{cid}_{secret}",
    )


def credential_id(kind: str, value: str) -> str | None:
    """The id an operator means by ``value``: the bare id, ``<kind>_<id>`` (the
    prefix that lists show), or the whole ``<kind>_<id>_<secret>`` pasted from
    where it is used. The secret is dropped here, so that no message naming the
    id can carry it. None when ``value`` is none of these (ids have no ``_``)."""
    value = value.strip()
    head = f"{kind}_"
    if value.startswith(head):
        cid = value[len(head) :].partition("_")[0]
    elif "_" in value:
        return None  # another kind's credential, perhaps: not an id of this kind
    else:
        cid = value
    return cid or None


def parse(kind: str, value: str) -> ParsedCredential | None:
    """Split ``<kind>_<id>_<secret>``; None when the value is not of that shape."""
    head = f"{kind}_"
    if not value.startswith(head):
        return None
    cid, sep, secret = value[len(head) :].partition("_")
    if not sep or not cid or not secret or len(cid) > 64 or len(secret) > 256:
        return None
    return ParsedCredential(kind=kind, id=cid, secret=secret)
