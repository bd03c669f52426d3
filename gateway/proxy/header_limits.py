"""Bounds on request headers, checked before any stage reads them.

uvicorn's httptools parser puts no limit on a request's header section (h11's
is 16 KB; nginx's default is 8 KB a line): a client could send megabytes of
``X-Forwarded-For``, which the locate stage would then split and walk before
the request is even authenticated. The gateway refuses such requests itself,
with 431 (RFC 6585): on ``/v1/*`` as a recorded refusal in the client's API
shape (``forwarded_for``, which the pipeline calls to read the header
anyway), elsewhere as ``{"detail": …}`` (``oversized_headers``).

The bounds are far above what real clients send (a long JWT is a few KB; an
``X-Forwarded-For`` through five proxies is under 300 bytes) and far below what
costs memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.proxy.errors import ProxyError

MAX_FORWARDED_FOR_BYTES = 8 * 1024
"""Every ``X-Forwarded-For`` line together (the header the locate stage walks)."""
MAX_HEADER_BYTES = 32 * 1024
"""Every header name and value together (nginx's default header buffers)."""
STATUS = 431

Headers = Iterable[tuple[bytes, bytes]]


def forwarded_for(headers: Headers) -> str | None:
    """Every ``X-Forwarded-For`` line, joined with commas; ProxyError(431) when
    it, or the headers as a whole, are over their bounds.

    One pass over the headers does both (it replaced ``asgi_io.joined_header``
    on the hot path, so the check costs no extra loop). RFC 9110 section 5.3:
    several lines of one name are one list; reading only the first would let
    a client whose proxy adds a line of its own pick its address with another.
    """
    total = 0
    lines: list[bytes] = []
    for name, value in headers:
        total += len(name) + len(value)
        if name == b"x-forwarded-for":
            lines.append(value)
    joined = b", ".join(lines) if lines else None
    problem = _problem(total, len(joined) if joined is not None else 0)
    if problem is not None:
        raise ProxyError(STATUS, problem)
    return joined.decode("latin-1") if joined is not None else None


def oversized_headers(headers: Headers) -> str | None:
    """Why these headers are refused, or None when they are within bounds."""
    total = 0
    forwarded: list[int] = []
    for name, value in headers:
        total += len(name) + len(value)
        if name == b"x-forwarded-for":
            forwarded.append(len(value))
    # Lines are joined with ", " (as ``forwarded_for`` reads them).
    joined = sum(forwarded) + 2 * (len(forwarded) - 1) if forwarded else 0
    return _problem(total, joined)


def _problem(total: int, forwarded: int) -> str | None:
    if forwarded > MAX_FORWARDED_FOR_BYTES:
        return (
            f"X-Forwarded-For is {forwarded} bytes (all lines together); "
            f"the limit is {MAX_FORWARDED_FOR_BYTES}"
        )
    if total > MAX_HEADER_BYTES:
        return f"request headers are {total} bytes; the limit is {MAX_HEADER_BYTES}"
    return None
