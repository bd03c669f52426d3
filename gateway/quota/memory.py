"""In-process counters: the default when ``GATEWAY_REDIS_URL`` is unset.

Correct for one process only (one replica, one worker). Every public method
does its reads and writes in one synchronous block with no ``await`` in it;
asyncio never switches tasks inside such a block, so check-then-consume is
atomic across all counters without a lock.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from gateway.quota.buckets import Counter
from gateway.quota.store import AdmitResult, CounterState, TokenSettlement, extra_entry_id

SWEEP_EVERY = 1000
"""Operations between sweeps of idle counters, which bounds memory for customers
who never come back."""


@dataclass(slots=True)
class _Window:
    window_ms: int
    order: list[tuple[int, str]] = field(default_factory=list)
    """(timestamp, entry id), sorted by timestamp."""
    amounts: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def purge(self, now_ms: int) -> None:
        # An entry counts while ts > now - window (same rule as the Lua script).
        cut = bisect.bisect_right(self.order, (now_ms - self.window_ms, "\uffff"))
        for _, entry_id in self.order[:cut]:
            self.total -= self.amounts.pop(entry_id, 0)
        del self.order[:cut]

    def add(self, entry_id: str, ts: int, amount: int) -> None:
        bisect.insort(self.order, (ts, entry_id))
        self.amounts[entry_id] = amount
        self.total += amount

    def set_amount(self, entry_id: str, amount: int) -> None:
        """Rewrite a live entry's amount in place (keeps its timestamp)."""
        old = self.amounts.get(entry_id)
        if old is None:
            return
        self.total += amount - old
        self.amounts[entry_id] = amount

    def state(self, now_ms: int, cost: int, limit: int, refuse: bool) -> CounterState:
        reset = self.order[-1][0] + self.window_ms - now_ms if self.order else 0
        retry = -1
        if refuse:
            retry = self.retry_ms(now_ms, cost, limit)
        return CounterState(self.total, max(reset, 0), retry)

    def retry_ms(self, now_ms: int, cost: int, limit: int) -> int:
        if cost > limit:
            return self.window_ms
        need = self.total + cost - limit
        freed = 0
        for ts, entry_id in self.order:
            freed += self.amounts[entry_id]
            if freed >= need:
                return max(ts + self.window_ms - now_ms, 1)
        return self.window_ms  # overdrawn by settled extras still to come; wait a window


class MemoryStore:
    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._leases: dict[str, dict[str, int]] = {}
        self._ops = 0

    def _window(self, counter: Counter, now_ms: int) -> _Window:
        window = self._windows.get(counter.key)
        if window is None:
            window = self._windows[counter.key] = _Window(counter.window_ms)
        window.purge(now_ms)
        return window

    def _lease_set(self, key: str, now_ms: int) -> dict[str, int]:
        leases = self._leases.setdefault(key, {})
        for lease_id in [lid for lid, exp in leases.items() if exp <= now_ms]:
            del leases[lease_id]
        return leases

    def _states(self, counters: list[Counter], now_ms: int, consume: bool) -> list[CounterState]:
        states = []
        for c in counters:
            if c.type == "lease":
                held = len(self._lease_set(c.key, now_ms))
                refuse = consume and held + 1 > c.limit.limit
                states.append(CounterState(held, 0, 1000 if refuse else -1))
            else:
                window = self._window(c, now_ms)
                refuse = consume and window.total + c.cost > c.limit.limit
                states.append(window.state(now_ms, c.cost, c.limit.limit, refuse))
        return states

    async def admit(
        self, counters: list[Counter], now_ms: int, entry_id: str, lease_expiry_ms: int
    ) -> AdmitResult:
        self._maybe_sweep(now_ms)
        states = self._states(counters, now_ms, consume=True)
        if any(s.retry_ms >= 0 for s in states):
            return AdmitResult(False, tuple(states))
        for c in counters:
            if c.type == "lease":
                self._leases[c.key][entry_id] = lease_expiry_ms
            elif c.cost > 0:
                self._windows[c.key].add(entry_id, now_ms, c.cost)
        return AdmitResult(True, tuple(self._states(counters, now_ms, consume=False)))

    async def peek(self, counters: list[Counter], now_ms: int) -> tuple[CounterState, ...]:
        return tuple(self._states(counters, now_ms, consume=False))

    async def settle_tokens(
        self,
        windows: list[TokenSettlement],
        entry_id: str,
        reserved: int,
        actual: int | None,
        now_ms: int,
    ) -> None:
        keep = 0 if actual is None else min(actual, reserved)
        extra = 0 if actual is None else max(actual - reserved, 0)
        for w in windows:
            window = self._windows.get(w.key)
            if window is None:
                window = self._windows[w.key] = _Window(w.window_ms)
            window.purge(now_ms)
            if keep == 0 and entry_id in window.amounts:
                self._drop(window, entry_id)
            else:
                window.set_amount(entry_id, keep)
            if extra > 0:
                window.add(extra_entry_id(entry_id), now_ms, extra)

    @staticmethod
    def _drop(window: _Window, entry_id: str) -> None:
        window.total -= window.amounts.pop(entry_id)
        window.order = [(ts, eid) for ts, eid in window.order if eid != entry_id]

    async def refresh_leases(
        self, keys: list[str], lease_id: str, expiry_ms: int, now_ms: int
    ) -> bool:
        alive = True
        for key in keys:
            leases = self._leases.get(key, {})
            if lease_id in leases:
                leases[lease_id] = expiry_ms
            else:
                alive = False
        return alive

    async def release_leases(self, keys: list[str], lease_id: str) -> None:
        for key in keys:
            self._leases.get(key, {}).pop(lease_id, None)

    def _maybe_sweep(self, now_ms: int) -> None:
        self._ops += 1
        if self._ops % SWEEP_EVERY:
            return
        for key, window in list(self._windows.items()):
            window.purge(now_ms)
            if not window.order:
                del self._windows[key]
        for key in list(self._leases):
            if not self._lease_set(key, now_ms):
                del self._leases[key]

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._windows.clear()
        self._leases.clear()
