"""An issuer's JWKS as the OIDC verifier keeps it: which published keys are
usable signature keys, how long the response may be cached, and whether a
token's ``kid`` is among the keys.

Separate from ``oidc.py``, which owns when the set is fetched and refreshed
and how a token is verified: these are pure readings of a JWKS document, a
``Cache-Control`` value and a key set.
"""

from __future__ import annotations

import logging
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, KeySet, OKPKey, RSAKey

log = logging.getLogger("gateway.identity.oidc")
"""The OIDC verifier's logger, as before these functions left ``oidc.py``."""

SIGNATURE_KEYS = (RSAKey, ECKey, OKPKey)
"""The key types of ``oidc.ALGORITHMS``: an ``oct`` (HMAC) key in a JWKS is never used."""


def usable_keys(document: Any, issuer: str, skipped_kids: set[str]) -> KeySet:
    """The usable keys of a JWKS document, one by one.

    One entry the verifier cannot use (an RSA key without its modulus, an
    EC point off its curve, a symmetric or unknown key type) must not take
    the issuer's other keys down with it: it is skipped, and said once per
    ``kid`` (``skipped_kids``: the ones already said, kept by the verifier).
    A set with no usable key at all is a failed fetch (the keys fetched
    before stay in use).
    """
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("the JWKS document has no 'keys' list")
    usable: list[Key] = []
    for entry in entries:
        try:
            key = JWKRegistry.import_key(entry)
            if not isinstance(key, SIGNATURE_KEYS):
                raise ValueError(f"{key.key_type} keys verify no algorithm accepted here")
        except (JoseError, ValueError, TypeError) as exc:
            _skipped(entry, exc, issuer, skipped_kids)
            continue
        usable.append(key)
    if not usable:
        raise ValueError(f"the JWKS has no usable key ({len(entries)} entries)")
    return KeySet(usable)


def _skipped(entry: object, exc: Exception, issuer: str, skipped_kids: set[str]) -> None:
    kid = entry.get("kid") if isinstance(entry, dict) else None
    name = kid if isinstance(kid, str) else repr(entry)[:80]
    if name in skipped_kids:
        return
    skipped_kids.add(name)
    log.warning("OIDC JWKS of %s: key %r is unusable and skipped (%s: %s)",
                issuer, name, type(exc).__name__, exc)  # fmt: skip


def has_kid(keys: KeySet, kid: str | None) -> bool:
    if kid is None:
        return len(keys.keys) == 1
    return any(k.kid == kid for k in keys.keys)


def cache_max_age(cache_control: str | None) -> float | None:
    """``max-age`` of a ``Cache-Control`` value, 0 for ``no-store``/``no-cache``;
    None when it says neither (or says it unreadably)."""
    if not cache_control:
        return None
    max_age: float | None = None
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            try:
                max_age = max(0.0, float(int(value.strip().strip('"'))))
            except ValueError:
                continue
    return max_age
