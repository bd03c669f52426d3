"""In-process counters: the default when ``GATEWAY_REDIS_URL`` is unset.

Correct for one process only (one replica, one worker). Every public method
does its reads and writes in one synchronous block with no ``await`` in it;
asyncio never switches tasks inside such a block, so check-then-consume is
atomic across all counters without a lock.

Same algorithm as the Lua scripts in ``gateway.quota.lua`` (the tests run both);
see ``gateway.quota.buckets`` for the slotted window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from gateway.quota.buckets import Counter, PreparedPlan
from gateway.quota.store import AdmitResult, CounterState

SWEEP_EVERY = 1000
"""Operations between sweeps of idle counters, which bounds memory for customers
who never come back."""

_NEVER = 2**63


class _Window:
    """A sliding window cut into slots; each slot is ``[slot id, newest ts, amount]``."""

    __slots__ = ("by_id", "slot_ms", "slots", "total", "window_ms")

    def __init__(self, window_ms: int, slot_ms: int) -> None:
        self.window_ms = window_ms
        self.slot_ms = slot_ms
        self.slots: deque[list[int]] = deque()
        """Oldest first; newest ts grows with the slot id, so this is also expiry order."""
        self.by_id: dict[int, list[int]] = {}
        self.total = 0

    def purge(self, now_ms: int) -> None:
        # A slot counts while its newest entry does: ts > now - window (as in Lua).
        cut = now_ms - self.window_ms
        slots = self.slots
        while slots and slots[0][1] <= cut:
            slot_id, _, amount = slots.popleft()
            del self.by_id[slot_id]
            self.total -= amount

    def add(self, ts: int, amount: int) -> None:
        slot_id = ts // self.slot_ms
        slots = self.slots
        if slots and slots[-1][0] == slot_id:
            slot = slots[-1]
            if ts > slot[1]:
                slot[1] = ts
        elif not slots or slots[-1][0] < slot_id:
            slot = [slot_id, ts, 0]
            slots.append(slot)
            self.by_id[slot_id] = slot
        else:
            slot = self._older(slot_id, ts)
        slot[2] += amount
        self.total += amount

    def _older(self, slot_id: int, ts: int) -> list[int]:
        # Another request's clock ran a little behind this one's: rare, and
        # close to the end, so a scan from the right is short.
        slot = self.by_id.get(slot_id)
        if slot is not None:
            if ts > slot[1]:
                slot[1] = ts
            return slot
        slot = [slot_id, ts, 0]
        at = len(self.slots)
        while at > 0 and self.slots[at - 1][0] > slot_id:
            at -= 1
        self.slots.insert(at, slot)
        self.by_id[slot_id] = slot
        return slot

    def release(self, ts: int, amount: int) -> None:
        """Take ``amount`` out of the slot ``ts`` was admitted into, if it is still held."""
        slot = self.by_id.get(ts // self.slot_ms)
        if slot is None:  # the slot left the window: nothing is held any more
            return
        amount = min(amount, slot[2])
        slot[2] -= amount
        self.total -= amount
        if slot[2] <= 0:
            # An empty slot must not keep "reset" alive (Lua drops it too).
            del self.by_id[slot[0]]
            for at in range(len(self.slots) - 1, -1, -1):
                if self.slots[at] is slot:
                    del self.slots[at]
                    break

    def reset_ms(self, now_ms: int) -> int:
        return max(self.slots[-1][1] + self.window_ms - now_ms, 0) if self.slots else 0

    def retry_ms(self, now_ms: int, cost: int, limit: int) -> int:
        """Until enough of the oldest slots have left for ``cost`` to fit."""
        if cost > limit:
            return self.window_ms
        need = self.total + cost - limit
        freed = 0
        for _, newest, amount in self.slots:
            freed += amount
            if freed >= need:
                return max(newest + self.window_ms - now_ms, 1)
        return self.window_ms  # overdrawn by settled extras still to come; wait a window


class _Leases:
    """Lease id -> expiry, plus a lower bound of the expiries so that the
    purge on every admit is one comparison while nothing has expired."""

    __slots__ = ("earliest", "expiry")

    def __init__(self) -> None:
        self.expiry: dict[str, int] = {}
        self.earliest = _NEVER

    def purge(self, now_ms: int) -> None:
        # Refreshes only push expiries later, so ``earliest`` stays a lower bound.
        if self.earliest > now_ms:
            return
        expiry = self.expiry
        for lease_id in [lid for lid, exp in expiry.items() if exp <= now_ms]:
            del expiry[lease_id]
        self.earliest = min(expiry.values(), default=_NEVER)

    def add(self, lease_id: str, expiry_ms: int) -> None:
        self.expiry[lease_id] = expiry_ms
        if expiry_ms < self.earliest:
            self.earliest = expiry_ms


class MemoryStore:
    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._leases: dict[str, _Leases] = {}
        self._ops = 0

    def _window(self, counter: Counter, now_ms: int) -> _Window:
        window = self._windows.get(counter.key)
        if window is None:
            window = self._windows[counter.key] = _Window(counter.window_ms, counter.slot_ms)
        elif window.slots and window.slots[0][1] <= now_ms - window.window_ms:
            window.purge(now_ms)
        return window

    def _lease_set(self, key: str, now_ms: int) -> _Leases:
        leases = self._leases.get(key)
        if leases is None:
            leases = self._leases[key] = _Leases()
        else:
            leases.purge(now_ms)
        return leases

    async def admit(
        self,
        plan: PreparedPlan,
        tokens: int,
        now_ms: int,
        lease_id: str,
        lease_expiry_ms: int,
        requests: int = 1,
    ) -> AdmitResult:
        self._ops += 1
        if self._ops % SWEEP_EVERY == 0:
            self._sweep(now_ms)
        # Check every counter first ...
        held: list[_Window | _Leases] = []
        refused = False
        for c in plan.counters:
            if c.type == "lease":
                leases = self._lease_set(c.key, now_ms)
                held.append(leases)
                if len(leases.expiry) >= c.limit.limit:
                    refused = True
            else:
                window = self._window(c, now_ms)
                held.append(window)
                if window.total + (tokens if c.type == "tokens" else requests) > c.limit.limit:
                    refused = True
        if refused:
            return AdmitResult(False, self._refusal(plan, held, tokens, now_ms, requests))
        # ... then consume every one (no await in between).
        states: list[CounterState] = []
        for c, store in zip(plan.counters, held, strict=True):
            if isinstance(store, _Leases):
                store.add(lease_id, lease_expiry_ms)
                states.append(CounterState(len(store.expiry), 0, -1))
            else:
                cost = tokens if c.type == "tokens" else requests
                if cost > 0:
                    store.add(now_ms, cost)
                states.append(CounterState(store.total, store.reset_ms(now_ms), -1))
        return AdmitResult(True, states)

    @staticmethod
    def _refusal(
        plan: PreparedPlan,
        held: list[_Window | _Leases],
        tokens: int,
        now_ms: int,
        requests: int = 1,
    ) -> list[CounterState]:
        states = []
        for c, store in zip(plan.counters, held, strict=True):
            if isinstance(store, _Leases):
                used = len(store.expiry)
                states.append(CounterState(used, 0, 1000 if used + 1 > c.limit.limit else -1))
            else:
                cost = tokens if c.type == "tokens" else requests
                retry = -1
                if store.total + cost > c.limit.limit:
                    retry = store.retry_ms(now_ms, cost, c.limit.limit)
                states.append(CounterState(store.total, store.reset_ms(now_ms), retry))
        return states

    async def peek(self, plan: PreparedPlan, now_ms: int) -> list[CounterState]:
        states = []
        for c in plan.counters:
            if c.type == "lease":
                states.append(CounterState(len(self._lease_set(c.key, now_ms).expiry), 0, -1))
            else:
                window = self._window(c, now_ms)
                states.append(CounterState(window.total, window.reset_ms(now_ms), -1))
        return states

    async def settle(
        self,
        plan: PreparedPlan,
        admitted_ms: int,
        reserved: int,
        actual: int | None,
        lease_id: str,
        now_ms: int,
    ) -> None:
        keep = 0 if actual is None else min(actual, reserved)
        extra = 0 if actual is None else max(actual - reserved, 0)
        for c in plan.token_windows:
            window = self._window(c, now_ms)
            if keep < reserved:
                window.release(admitted_ms, reserved - keep)
            if extra > 0:
                window.add(now_ms, extra)
        if lease_id:
            for key in plan.lease_keys:
                leases = self._leases.get(key)
                if leases is not None:
                    leases.expiry.pop(lease_id, None)

    async def refresh_leases(
        self, keys: Sequence[str], lease_id: str, expiry_ms: int, now_ms: int
    ) -> bool:
        alive = True
        for key in keys:
            leases = self._leases.get(key)
            if leases is not None and lease_id in leases.expiry:
                leases.expiry[lease_id] = expiry_ms
            else:
                alive = False
        return alive

    def _sweep(self, now_ms: int) -> None:
        for key, window in list(self._windows.items()):
            window.purge(now_ms)
            if not window.slots:
                del self._windows[key]
        for key, leases in list(self._leases.items()):
            leases.purge(now_ms)
            if not leases.expiry:
                del self._leases[key]

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._windows.clear()
        self._leases.clear()
