"""The Ed25519 key that signs audit checkpoints, and the signed payloads.

Where the key comes from, in order:
  1. ``GATEWAY_AUDIT_SIGNING_KEY``: a path to a PEM (PKCS#8) file, or base64 of
     the 32 raw private-key bytes;
  2. ``audit_signing.key`` beside the SQLite database file; for PostgreSQL,
     ``./audit_signing.key`` in the working directory (set the variable in
     production so every replica signs with a key you manage);
  3. generated on first start and written to that path with mode 0600.

A key is named by its fingerprint: SHA-256 hex of the raw public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.audit import ed25519
from gateway.audit.chain import canonical, utc
from gateway.settings import Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# A serving worker loads, generates and signs without importing cryptography
# (gateway.audit.ed25519 says why); verifying and PEM public keys (the CLI, an
# admin route, exports) import it when called.

KEY_FILE_NAME = "audit_signing.key"

log = logging.getLogger("gateway.audit.signing")


class SigningKeyError(Exception):
    """The configured signing key cannot be read."""


# PKCS#8 (RFC 8410) of an Ed25519 private key without attributes or public
# key, as ``openssl genpkey -algorithm ed25519`` and cryptography write it:
# this prefix, then the 32-byte seed.
_PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_PRIVATE = ("-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----")


@dataclass(frozen=True, slots=True)
class Signer:
    seed: bytes = field(repr=False)
    """The 32 raw private-key bytes."""
    public_raw: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public_raw", ed25519.public_key(self.seed))

    @classmethod
    def generate(cls) -> Signer:
        return cls(os.urandom(ed25519.SEED_BYTES))

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(ed25519.sign(self.seed, payload)).decode("ascii")

    def private_pem(self) -> bytes:
        """The key as an unencrypted PKCS#8 PEM, as cryptography writes it."""
        der = base64.b64encode(_PKCS8_ED25519_PREFIX + self.seed).decode("ascii")
        return f"{_PEM_PRIVATE[0]}\n{der}\n{_PEM_PRIVATE[1]}\n".encode("ascii")


def public_raw(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key_raw: bytes) -> str:
    return hashlib.sha256(public_key_raw).hexdigest()


def public_pem(public_key_raw: bytes) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(public_key_raw)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(text: str) -> bytes:
    """Raw public key bytes from a PEM public key or base64 of the 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode("ascii"))
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError("not an Ed25519 public key")
        return public_raw(key)
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise SigningKeyError("public key is neither PEM nor base64") from exc
    if len(raw) != 32:
        raise SigningKeyError("a raw Ed25519 public key has 32 bytes")
    return raw


def verify_signature(public_key_raw: bytes, signature_b64: str, payload: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        sig = base64.b64decode(signature_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(public_key_raw).verify(sig, payload)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def default_key_path(settings: Settings) -> Path:
    db_path = settings.sqlite_path()
    if db_path is not None:
        return db_path.parent / KEY_FILE_NAME
    return Path(KEY_FILE_NAME)


def _from_setting(value: str) -> bytes:
    # Secret stores hand the key over in more than one shape: a file's text
    # read into the variable keeps its trailing newline, and Kubernetes or
    # Vault put a PEM's text itself in the variable, not a path to it.
    value = value.strip()
    if value.startswith("-----BEGIN"):
        return _parse_pem(value.encode("ascii", "replace"), "GATEWAY_AUDIT_SIGNING_KEY")
    path = Path(value)
    if path.is_file():
        return _read_pem(path)
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise SigningKeyError(
            "GATEWAY_AUDIT_SIGNING_KEY: not an existing file and not base64"
        ) from exc
    if len(raw) != 32:
        raise SigningKeyError("GATEWAY_AUDIT_SIGNING_KEY: base64 must decode to 32 bytes")
    return raw


def _read_pem(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read an unencrypted PEM private key: {exc}") from exc
    return _parse_pem(data, str(path))


def _parse_pem(data: bytes, source: str) -> bytes:
    """The seed of a PEM private key. ``source`` names where the PEM came from
    (a path, or the variable): never the key."""
    seed = _plain_pkcs8_seed(data)
    if seed is not None:
        return seed
    # Any other shape (a PKCS#8 that also carries the public key, an encrypted
    # key, another algorithm, garbage): cryptography reads it, or says why not.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        problem = f"{source}: cannot read an unencrypted PEM private key: {exc}"
        raise SigningKeyError(problem) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{source}: not an Ed25519 private key")
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())  # fmt: skip


def _plain_pkcs8_seed(data: bytes) -> bytes | None:
    """The seed of the one PEM shape the gateway writes (and ``openssl genpkey``
    does): exactly the RFC 8410 prefix and 32 bytes; None for anything else."""
    text = data.decode("ascii", "replace").strip()
    begin, end = _PEM_PRIVATE
    if not (text.startswith(begin) and text.endswith(end)):
        return None
    try:
        der = base64.b64decode("".join(text[len(begin):-len(end)].split()), validate=True)
    except binascii.Error:
        return None
    prefix = _PKCS8_ED25519_PREFIX
    if len(der) != len(prefix) + ed25519.SEED_BYTES or not der.startswith(prefix):
        return None
    return der[len(prefix):]


def load_signer(settings: Settings, create: bool = True) -> Signer:
    """The configured key, else the one beside the DB, else a new one (if ``create``)."""
    if settings.audit_signing_key:
        return Signer(_from_setting(settings.audit_signing_key))
    path = default_key_path(settings)
    if path.exists():
        return Signer(_read_pem(path))
    if not create:
        raise SigningKeyError(f"no signing key: {path} does not exist")
    signer = Signer.generate()
    pem = signer.private_pem()
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two workers starting together must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Signer(_read_pem(path))
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    # Loud: a key nobody knows was made is a key nobody backs up or publishes,
    # and a host that loses it (a container's working directory) signs on
    # with another, which verify then reports as unknown_key.
    log.warning(
        "generated a new audit signing key %s (fingerprint %s): back it up and publish "
        "`gateway audit public-key`; in production set GATEWAY_AUDIT_SIGNING_KEY instead",
        path.resolve(), signer.fingerprint,
    )  # fmt: skip
    return signer


@dataclass(frozen=True, slots=True)
class CheckpointLinks:
    """What a format 2 checkpoint signs besides its own head (gateway/audit/README.md).

    Deleting checkpoints (or whole chains) must not leave a log that verifies:
    ``prev`` chains each checkpoint to the one before it on its chain, so one
    deleted in the middle breaks a signature chain; ``within_s`` is the writer's
    promise to sign new records within that long, so an unsigned tail older than
    that means later checkpoints were removed (or the writer died); ``nodes``
    are the other chains' committed heads this writer read, so a chain deleted
    wholesale is still named by the others' signatures.
    """

    prev: tuple[int, str] | None
    """``(seq, sha256 hex of its payload)`` of this chain's previous checkpoint."""
    within_s: float
    nodes: dict[str, tuple[int, str]]
    """Other chain id -> ``(last_seq, last_hash)`` (only those that moved since the
    writer's previous checkpoint)."""


def payload_sha256(payload: str | bytes) -> str:
    """How a checkpoint names the previous one: SHA-256 hex of its exact payload."""
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    return hashlib.sha256(raw).hexdigest()


def checkpoint_payload(
    kind: str, node_id: str, seq: int, head_hash: str, count: int, ts: datetime,
    links: CheckpointLinks | None = None,
) -> bytes:
    """What a checkpoint (or tombstone) signature covers: format 1 without ``links``
    (tombstones, and every checkpoint written before links existed), else format 2."""
    doc: dict[str, Any] = {
        "kind": kind,
        "node_id": node_id,
        "seq": seq,
        "head_hash": head_hash,
        "count": count,
        "ts": utc(ts),
        "format": 1,
    }
    if links is not None:
        doc["format"] = 2
        doc["prev"] = None if links.prev is None else {"seq": links.prev[0],
                                                       "sha256": links.prev[1]}
        doc["within_s"] = links.within_s
        doc["nodes"] = {n: {"seq": s, "hash": h} for n, (s, h) in links.nodes.items()}
    return canonical(doc)
