"""The audit signing key as operators hand it over (GATEWAY_AUDIT_SIGNING_KEY)
and as the gateway generates it when they do not."""

from __future__ import annotations

import base64
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import ed25519
from gateway.audit.signing import KEY_FILE_NAME, SigningKeyError, fingerprint, load_signer
from tests.audit.conftest import make_settings


def test_a_generated_key_is_announced_with_its_fingerprint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A key generated silently is a key nobody backs up or publishes: on
    PostgreSQL it lands in the working directory, and a container restarted
    without it signs with a new one, leaving every earlier checkpoint
    unverifiable on that host (``unknown_key``) with nothing in the log to say why."""
    settings = make_settings(tmp_path / "gw.db", audit_signing_key=None)
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        signer = load_signer(settings)
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    generated = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(generated) == 1, [r.getMessage() for r in caplog.records]
    message = generated[0].getMessage()
    assert str(path) in message and signer.fingerprint in message
    assert "GATEWAY_AUDIT_SIGNING_KEY" in message

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        again = load_signer(settings)
    assert again.fingerprint == signer.fingerprint
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _raw_b64(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())  # fmt: skip
    return base64.b64encode(raw).decode()


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()  # fmt: skip


def test_the_variable_takes_the_forms_secret_stores_hand_out(tmp_path: Path) -> None:
    """A secret read from a file or an env file often ends in a newline, and
    Kubernetes and Vault hand a PEM to a variable as its text: both were
    refused as "not an existing file and not base64"."""
    key = Ed25519PrivateKey.generate()
    expected = fingerprint(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw))
    forms = [_raw_b64(key), _raw_b64(key) + "\n", f"  {_raw_b64(key)}\r\n", _pem(key),
             _pem(key).strip()]  # fmt: skip
    for value in forms:
        settings = make_settings(tmp_path / "gw.db", audit_signing_key=value)
        assert load_signer(settings, create=False).fingerprint == expected, repr(value[:12])
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_a_wrong_value_is_still_refused_without_echoing_it(tmp_path: Path) -> None:
    secret_hex = "ab" * 32
    for value in (secret_hex, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
                  str(tmp_path / "missing.pem")):  # fmt: skip
        settings = make_settings(tmp_path / "gw.db", audit_signing_key=value)
        with pytest.raises(SigningKeyError) as raised:
            load_signer(settings, create=False)
        assert "GATEWAY_AUDIT_SIGNING_KEY" in str(raised.value)
        assert secret_hex not in str(raised.value)


_SIGNS_WITHOUT_CRYPTOGRAPHY = """
import base64, sys
from gateway.audit.signing import load_signer
from gateway.settings import Settings
settings = Settings(database_url=sys.argv[1], upstream_url="http://127.0.0.1:9")
signer = load_signer(settings)
again = load_signer(settings)
assert again.public_raw == signer.public_raw
print(signer.public_b64, signer.sign(b"checkpoint payload"))
print(sorted(m for m in sys.modules if m.split(".")[0] == "cryptography"))
"""


def test_a_worker_generates_loads_and_signs_without_cryptography(tmp_path: Path) -> None:
    """A serving worker signs a checkpoint every 1000 records or 60 s; the
    cryptography package costs each worker ~9 MB resident (its own OpenSSL
    beside the one the ssl module has loaded). Generating, loading and signing
    happen without importing it, and the signatures are the ones cryptography
    makes and verifies (Ed25519 is deterministic)."""
    db = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    result = subprocess.run([sys.executable, "-c", _SIGNS_WITHOUT_CRYPTOGRAPHY, db],
                            capture_output=True, text=True, check=False, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    signed, imported = result.stdout.strip().splitlines()
    assert imported == "[]"
    public_b64, signature = signed.split()
    pem = (tmp_path / KEY_FILE_NAME).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    raw_public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)  # fmt: skip
    assert base64.b64decode(public_b64) == raw_public
    assert base64.b64decode(signature) == key.sign(b"checkpoint payload")


def test_without_a_reachable_libcrypto_cryptography_signs_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Python linked against no shared OpenSSL 1.1.1+ signs with cryptography:
    the same public key and signature for the same seed."""
    seed = os.urandom(32)
    through_ssl = (ed25519.public_key(seed), ed25519.sign(seed, b"checkpoint"))
    monkeypatch.setattr(ed25519, "_libcrypto", lambda: None)
    assert (ed25519.public_key(seed), ed25519.sign(seed, b"checkpoint")) == through_ssl
    with pytest.raises(ValueError):
        ed25519.sign(b"short", b"checkpoint")
