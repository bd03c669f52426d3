"""``t=<unix ts>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">`` webhook signatures,
the scheme Persona (``Persona-Signature``) and Stripe (``Stripe-Signature``)
both use, and the gateway's own header too.

Several space-separated pairs (Persona during secret rotation) and several
``v1`` in one pair (Stripe while a rolled secret is still valid) are accepted;
other keys (Stripe's ``v0`` test signature) are ignored. Every candidate is
compared with every secret in constant time, without an early exit.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


class SignatureError(Exception):
    pass


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _pairs(header: str) -> list[tuple[int, list[str]]]:
    out: list[tuple[int, list[str]]] = []
    for group in header.split():
        ts: int | None = None
        sigs: list[str] = []
        for item in group.split(","):
            key, _, value = item.strip().partition("=")
            if key == "t" and value.isdigit():
                ts = int(value)
            elif key == "v1" and value:
                sigs.append(value.lower())
        if ts is not None and sigs:
            out.append((ts, sigs))
    return out


MALFORMED = "malformed signature header"
"""The one failure told to the caller as it is: it says nothing of any secret."""


def verify_signature(
    header: str, body: bytes, secrets: Sequence[str], now: float, tolerance: float
) -> None:
    """Raise SignatureError unless some pair is signed by some secret and is fresh."""
    pairs = _pairs(header)
    if not pairs:
        raise SignatureError(MALFORMED)
    stale = False
    for ts, sigs in pairs:
        expected = [sign(secret, ts, body) for secret in secrets]
        # Check every combination: no early exit that would leak which one matched.
        matched = False
        for sig in sigs:
            for want in expected:
                matched |= hmac.compare_digest(sig.encode(), want.encode())
        if matched:
            if abs(now - ts) <= tolerance:
                return
            stale = True
    raise SignatureError("timestamp outside tolerance" if stale else "signature mismatch")
