"""Ed25519 signing for a serving worker, with the OpenSSL already in the process.

A worker signs an audit checkpoint every ``GATEWAY_AUDIT_CHECKPOINT_EVERY``
records or ``GATEWAY_AUDIT_CHECKPOINT_SECONDS``, so the signing code is
resident in every worker. The cryptography package carries its own OpenSSL
build: importing it cost each worker ~9 MB of resident memory, beside the
system libcrypto that Python's ``ssl`` module (loaded by aiohttp in any case)
has mapped already. This module calls that libcrypto's EVP interface through
ctypes instead (~0.3 MB). Where it cannot be found (a Python linked against
no shared OpenSSL 1.1.1 or later), cryptography does the same work.

Ed25519 (RFC 8032) is deterministic: both backends give the same public key
and the same signature for the same seed and message
(``tests/audit/test_signing_key.py`` checks this against cryptography).
Verification stays with cryptography (``gateway.audit.signing``): the CLI
and an admin route verify, a worker never does while serving.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

SEED_BYTES = 32
"""An Ed25519 private key is 32 random bytes (RFC 8032's seed)."""

_SIGNATURE_BYTES = 64
_EVP_PKEY_ED25519 = 1087  # NID_ED25519, the same in every OpenSSL since 1.1.1


@functools.cache
def _libcrypto() -> Any | None:
    """The libcrypto that ``_ssl`` is linked to, with the EVP calls typed; None
    when it is not reachable this way (then cryptography signs)."""
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)  # its dependencies' symbols resolve through it
        lib.EVP_PKEY_new_raw_private_key.restype = ctypes.c_void_p
        lib.EVP_PKEY_new_raw_private_key.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.EVP_PKEY_get_raw_public_key.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)]
        lib.EVP_PKEY_free.argtypes = [ctypes.c_void_p]
        lib.EVP_MD_CTX_new.restype = ctypes.c_void_p
        lib.EVP_MD_CTX_free.argtypes = [ctypes.c_void_p]
        lib.EVP_DigestSignInit.argtypes = [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.EVP_DigestSign.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_char_p, ctypes.c_size_t]
    except (ImportError, OSError, AttributeError):
        return None
    return lib


def _private_key(lib: Any, seed: bytes) -> int:
    if len(seed) != SEED_BYTES:
        raise ValueError("an Ed25519 private key has 32 bytes")
    pkey: int | None = lib.EVP_PKEY_new_raw_private_key(_EVP_PKEY_ED25519, None, seed, len(seed))
    if not pkey:
        raise ValueError("OpenSSL refused the Ed25519 private key")
    return pkey


def public_key(seed: bytes) -> bytes:
    """The 32 raw public-key bytes of ``seed``."""
    lib = _libcrypto()
    if lib is None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    pkey = _private_key(lib, seed)
    try:
        out = ctypes.create_string_buffer(SEED_BYTES)
        size = ctypes.c_size_t(SEED_BYTES)
        if lib.EVP_PKEY_get_raw_public_key(pkey, out, ctypes.byref(size)) != 1:
            raise ValueError("OpenSSL could not derive the Ed25519 public key")
        return out.raw[: size.value]
    finally:
        lib.EVP_PKEY_free(pkey)


def sign(seed: bytes, payload: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``payload`` by ``seed``."""
    lib = _libcrypto()
    if lib is None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(seed).sign(payload)
    pkey = _private_key(lib, seed)
    ctx: int | None = lib.EVP_MD_CTX_new()
    try:
        if not ctx or lib.EVP_DigestSignInit(ctx, None, None, None, pkey) != 1:
            raise ValueError("OpenSSL could not start an Ed25519 signature")
        out = ctypes.create_string_buffer(_SIGNATURE_BYTES)
        size = ctypes.c_size_t(_SIGNATURE_BYTES)
        if lib.EVP_DigestSign(ctx, out, ctypes.byref(size), payload, len(payload)) != 1:
            raise ValueError("OpenSSL could not sign")
        return out.raw[: size.value]
    finally:
        if ctx:
            lib.EVP_MD_CTX_free(ctx)
        lib.EVP_PKEY_free(pkey)
