"""A bounded memory of ids the store did not know, each for a short while.

The ids are the caller's claim (``gk_<id>_…`` before anything is verified), so
remembering every one kept whatever an unauthenticated client sent for the
life of the process: 20,000 random ids, 5 MB. Here the oldest miss goes once
``capacity`` are held, and a miss older than ``ttl`` counts for nothing and
is dropped at the next miss.
Forgetting a miss early costs at most one more store read for that id;
known ids are kept elsewhere, so a flood of unknown ones never evicts them.
"""

from __future__ import annotations

from collections import OrderedDict

CAPACITY = 4096


class Misses:
    def __init__(self, ttl: float, capacity: int = CAPACITY) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._at: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._at)

    def fresh(self, ident: str, now: float) -> bool:
        """Was ``ident`` missed less than ``ttl`` ago?"""
        at = self._at.get(ident)
        return at is not None and now - at < self._ttl

    def add(self, ident: str, now: float) -> None:
        self._at[ident] = now
        self._at.move_to_end(ident)
        # Oldest first: drop what has expired, then whatever is over capacity.
        while self._at:
            oldest = next(iter(self._at.values()))
            if now - oldest < self._ttl and len(self._at) <= self._capacity:
                break
            self._at.popitem(last=False)

    def discard(self, ident: str) -> None:
        self._at.pop(ident, None)

    def clear(self) -> None:
        self._at.clear()
