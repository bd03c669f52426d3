"""Time-ordered record ids (ULID layout: 48-bit milliseconds + 80 random bits,
Crockford base32, 26 characters), monotonic within one process so that
sorting by id is sorting by creation time."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(now_ms: int | None = None) -> str:
    """A new 26-character id; strictly increasing within this process."""
    global _last_ms, _last_rand
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for increments
        _last_ms, _last_rand = ms, rand
    return _encode(ms, 10) + _encode(rand, 16)


def id_time_ms(record_id: str) -> int:
    """The millisecond timestamp encoded in an id."""
    value = 0
    for ch in record_id[:10]:
        value = value * 32 + _ALPHABET.index(ch)
    return value
