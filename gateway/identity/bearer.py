"""The one parser of ``Authorization`` headers, for the proxied API and the admin API.

It says what is wrong when the header carries no bearer token, because
"missing credential" for a header that is present misleads: a client sending
``Basic …`` needs to hear that the scheme is not supported, one sending
``Bearer `` with nothing after it that its key is empty.

The messages go into 401 answers and audit records, so they never quote the
credential: a scheme is named only when it looks like one (letters, followed
by a space and credentials); a bare value, which may be a key pasted without
``Bearer``, is described, not echoed.
"""

from __future__ import annotations

from typing import NamedTuple

USE_BEARER = "use `Authorization: Bearer <key>`"
_MAX_SCHEME = 20


class Authorization(NamedTuple):
    token: str | None
    """The bearer token, or None when the header gives none."""
    problem: str | None
    """Why a header that is present gives no token (None when absent or fine)."""


def parse_authorization(value: str | None) -> Authorization:
    if value is None:
        return Authorization(None, None)
    scheme, space, rest = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        token = rest.strip()
        return Authorization(token, None) if token else Authorization(None, "empty bearer token")
    if not scheme:
        return Authorization(None, f"empty Authorization header: {USE_BEARER}")
    if space and scheme.isascii() and scheme.isalpha() and len(scheme) <= _MAX_SCHEME:
        return Authorization(None, f"unsupported authorization scheme {scheme!r}: {USE_BEARER}")
    return Authorization(None, f"Authorization header without a scheme: {USE_BEARER}")
