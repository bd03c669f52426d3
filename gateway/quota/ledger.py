"""What this process added to the shared (Redis) counters, to put back if Redis loses them.

Redis restarted without persistence, flushed or evicting keys comes back
empty, and every window would start again from zero: a customer that had used
its ``tokens_per_day`` would get a second day's worth. No single process knows
the whole count, but each knows its own share, and the shares add up to it.
So every process keeps, per window counter and slot, the amount it admitted
there (as later settled) and the newest timestamp it put there; when the reset
watch sees the counters lost, it adds them back (``lua.RESTORE``) with their
own slot times, so they leave the window when they would have.

Kept only by the Redis store: in-process counters have nothing to restore,
and the benchmark's path does not pay for it. Bounded: closed windows are
dropped by ``prune`` (from the reset watch, off the request path, looking
only at the front of each window's entries), and past ``MAX_ENTRIES`` the
entries closest to leaving their window go first (what is dropped is simply
not restored).
"""

from __future__ import annotations

from collections import OrderedDict

from gateway.quota.buckets import SLOT_MS, Counter, PreparedPlan

MAX_ENTRIES = 50_000
"""(counter, slot) entries kept, all windows together: ~13 MB at the cap
(measured ~260 B each). A day window holds up to 1440 slots, so this covers
~35 customers sending around the clock through one process, or thousands
with an hour or two each; beyond it, those closest to leaving go first."""

_OFFSET_BITS = 16
"""An entry is one int: amount << 16 | (newest ts - slot start). Slots are at
most 60 000 ms wide, so the offset fits; one int is the smallest value a dict
can hold (a list of two cost ~3x the memory)."""
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1

Slots = OrderedDict[tuple[str, int], int]


class Ledger:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        # Per window length: (counter key, slot id) -> packed entry, in the order
        # entries were created, which is slot order (a process's clock moves
        # forward): the closed ones are at the front, so prune stops at the
        # first open one, and the cap drops from a front.
        self._windows: dict[int, Slots] = {}
        self._size = 0
        self.dropped = 0
        """Entries dropped at the cap (still open): their amounts are not restorable."""

    def __len__(self) -> int:
        return self._size

    def _add(self, c: Counter, ts: int, amount: int) -> None:
        slots = self._windows.get(c.window_ms)
        if slots is None:
            slots = self._windows[c.window_ms] = OrderedDict()
        slot_id = ts // c.slot_ms
        k = (c.key, slot_id)
        offset = ts - slot_id * c.slot_ms
        v = slots.get(k)
        if v is not None:
            slots[k] = (v + (amount << _OFFSET_BITS)) | max(v & _OFFSET_MASK, offset)
            return
        if self._size >= self.max_entries:
            self._drop_first_to_close()
        slots[k] = (amount << _OFFSET_BITS) | offset
        self._size += 1

    def _drop_first_to_close(self) -> None:
        """Drop the entry that leaves its window first (a minute slot before a
        day slot of the same age): it is worth the least to restore."""
        chosen: Slots | None = None
        closes = 0
        for window, slots in self._windows.items():
            if slots:
                _, slot_id = next(iter(slots))
                at = slot_id * SLOT_MS[window] + window
                if chosen is None or at < closes:
                    chosen, closes = slots, at
        if chosen is not None:
            chosen.popitem(last=False)
            self._size -= 1
            self.dropped += 1

    def admitted(self, plan: PreparedPlan, tokens: int, requests: int, now_ms: int) -> None:
        """The admit script consumed ``tokens``/``requests`` in every window at ``now_ms``."""
        for c in plan.counters:
            if c.type == "tokens":
                if tokens > 0:
                    self._add(c, now_ms, tokens)
            elif c.type == "requests" and requests > 0:
                self._add(c, now_ms, requests)

    def settled(
        self, plan: PreparedPlan, admitted_ms: int, reserved: int, actual: int | None, now_ms: int
    ) -> None:
        """Mirror of ``lua.SETTLE`` on this process's share of the token windows."""
        keep = 0 if actual is None else min(actual, reserved)
        extra = 0 if actual is None else max(actual - reserved, 0)
        for c in plan.token_windows:
            if keep < reserved:
                slots = self._windows.get(c.window_ms)
                k = (c.key, admitted_ms // c.slot_ms)
                v = slots.get(k) if slots is not None else None
                if slots is not None and v is not None:
                    left = max((v >> _OFFSET_BITS) - (reserved - keep), 0)
                    if left == 0:
                        del slots[k]
                        self._size -= 1
                    else:
                        slots[k] = (left << _OFFSET_BITS) | (v & _OFFSET_MASK)
            if extra > 0:
                self._add(c, now_ms, extra)

    def prune(self, now_ms: int) -> None:
        """Drop the slots whose window has closed (as ``purge`` does in Redis);
        amortised O(1) per entry: only the front of each window's order is looked at."""
        for window, slots in self._windows.items():
            slot_ms = SLOT_MS[window]
            cut = now_ms - window
            while slots:
                (_, slot_id), v = next(iter(slots.items()))
                if slot_id * slot_ms + (v & _OFFSET_MASK) > cut:
                    break  # open; those behind it are younger slots
                slots.popitem(last=False)
                self._size -= 1

    def restore_args(self, now_ms: int) -> tuple[list[str], list[int]]:
        """The open slots as ``lua.RESTORE`` takes them: the counter keys, then
        per key its window, then per slot (key index, slot id, newest ts, amount)."""
        self.prune(now_ms)
        index: dict[str, int] = {}
        windows: list[int] = []
        entries: list[int] = []
        for window, slots in self._windows.items():
            slot_ms = SLOT_MS[window]
            for (key, slot_id), v in slots.items():
                i = index.get(key)
                if i is None:
                    i = index[key] = len(index)
                    windows.append(window)
                ts = slot_id * slot_ms + (v & _OFFSET_MASK)
                entries += (i, slot_id, ts, v >> _OFFSET_BITS)
        return list(index), windows + entries
