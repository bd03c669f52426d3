"""A limit on unauthenticated refusals per client address, and their summaries.

Every refusal of a caller the gateway could not identify (no credential, a
wrong one, an unknown route or method without a valid key, a body over the
limit) was one durable, hash-chained decision record, with no limit: an
anonymous client could write records as fast as the gateway commits them,
filling the disk and taking the group-commit capacity every paying request
waits on. As Kong, Envoy and fail2ban do for failed authentication, the
gateway limits them per client address (``GATEWAY_UNAUTHENTICATED_LIMIT`` in
``GATEWAY_UNAUTHENTICATED_WINDOW_SECONDS``; 0 turns the limit off):

- Up to the limit in a window, each refusal is recorded and answered as before.
- Past it, the refusal is answered 429 in the client's API shape with
  ``retry-after`` (the end of the window), and is *counted* instead of
  recorded: per address and window, this process keeps how many it refused,
  by status and by endpoint, and when the window ends writes **one summary
  record**, kind ``probes_limited``, into the same signed chain. Its id is the
  ``x-gateway-decision-id`` every one of those 429s carried, so each answer
  still names the record that accounts for it (``GET /admin/v1/decisions/{id}``
  once the window has ended). Nothing refused goes unaccounted.

Only refusals are limited: a request that would be served is never refused
here, whatever its address has sent before (a customer behind the same NAT as
a misconfigured client keeps working), and identified callers are never
counted. Summaries are per process: with N workers one address's window may
have up to N summaries, whose counts add up. A summary that cannot be
committed is retried at the next tick; at shutdown, what is pending is
written before the audit writer stops (or logged with its counts, if it
cannot be). Nothing of this runs for an allowed request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.audit.chain import truncate_ip
from gateway.audit.ids import new_id
from gateway.ops.background import BackgroundTask, every
from gateway.proxy.errors import ProxyError
from gateway.proxy.probe_counts import ProbeCounts, client_key
from gateway.stages import AuditSink, AuditUnavailable

log = logging.getLogger(__name__)

KIND = "probes_limited"
RULE = "unauthenticated-rate-limited"
MAX_ENDPOINTS = 32
"""Distinct endpoints named in one summary; the rest are counted under ``OTHER``."""
OTHER = "(other)"
_ENDPOINT_CHARS = 200


@dataclass(frozen=True, slots=True)
class Limited:
    """A refusal past the limit: answered 429, counted in ``record_id``'s summary."""

    record_id: str
    retry_after: int

    def refusal(self) -> ProxyError:
        return ProxyError(
            429,
            "too many unauthenticated requests from this address; "
            f"retry after {self.retry_after} s",
            code=RULE,
            # The SDKs retry a 429 (not the 401 it replaces) unless told not
            # to: a wrong key's retries would only add to the count.
            headers={"retry-after": str(self.retry_after), "x-should-retry": "false"},
        )


@dataclass(slots=True)
class Tally:
    """What one process refused without recording, for one address and window."""

    record_id: str
    client: str
    window_start: int
    first_at: datetime
    last_at: datetime
    refused: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_endpoint: dict[str, int] = field(default_factory=dict)

    def add(self, status: int, endpoint: str, at: datetime) -> None:
        self.refused += 1
        self.last_at = at
        code = str(status)
        self.by_status[code] = self.by_status.get(code, 0) + 1
        name = endpoint[:_ENDPOINT_CHARS]
        if name not in self.by_endpoint and len(self.by_endpoint) >= MAX_ENDPOINTS:
            name = OTHER
        self.by_endpoint[name] = self.by_endpoint.get(name, 0) + 1

    def payload(self, limit: int, window: int, ip_mode: Literal["none", "24_48"]) -> dict[str, Any]:
        start = datetime.fromtimestamp(self.window_start, UTC)
        end = datetime.fromtimestamp(self.window_start + window, UTC)
        return {
            "client_ip": _shown(self.client, ip_mode),
            "window_start": start.isoformat().replace("+00:00", "Z"),
            "window_end": end.isoformat().replace("+00:00", "Z"),
            "limit": limit,
            "refused": self.refused,
            "by_status": dict(sorted(self.by_status.items())),
            "by_endpoint": dict(sorted(self.by_endpoint.items())),
            "first_at": self.first_at.isoformat().replace("+00:00", "Z"),
            "last_at": self.last_at.isoformat().replace("+00:00", "Z"),
        }


def _shown(client: str, ip_mode: Literal["none", "24_48"]) -> str:
    """The counted address (or IPv6 /64) as records show addresses (GATEWAY_AUDIT_IP_TRUNCATE)."""
    address, slash, bits = client.partition("/")
    shown = truncate_ip(address, ip_mode) or address
    if not slash:
        return shown
    return f"{shown}/{48 if ip_mode == '24_48' else bits}"


class ProbeLimiter:
    def __init__(
        self,
        limit: int,
        window_seconds: int,
        counts: ProbeCounts,
        audit: AuditSink,
        ip_mode: Literal["none", "24_48"] = "none",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self._counts = counts
        self._audit = audit
        self._ip_mode = ip_mode
        self._clock = clock
        self._tallies: dict[tuple[str, int], Tally] = {}
        self._retry: list[Tally] = []
        """Summaries whose write failed: each keeps its own id (its 429s named it)."""
        self._task = BackgroundTask("probe-summaries")

    async def admit(self, client_ip: str | None, status: int, endpoint: str) -> Limited | None:
        """None: record this refusal as usual. Else it is past the limit: counted here."""
        now = self._clock()
        start = int(now // self.window) * self.window
        key = client_key(client_ip)
        if await self._counts.hit(key, start, self.window) <= self.limit:
            return None
        at = datetime.fromtimestamp(now, UTC)
        tally = self._tallies.get((key, start))
        if tally is None:
            tally = Tally(new_id(int(now * 1000)), key, start, at, at)
            self._tallies[(key, start)] = tally
        tally.add(status, endpoint, at)
        return Limited(tally.record_id, max(1, math.ceil(start + self.window - now)))

    async def start(self) -> None:
        tick = min(5.0, max(0.2, self.window / 4))
        self._task.start(lambda: every(tick, self.flush, log, "writing probe summaries"))

    async def stop(self) -> None:
        """Write every pending summary, open windows included (before the audit writer stops)."""
        await self._task.stop()
        await self.flush(final=True)
        for tally in self._retry:
            log.error("unauthenticated refusals not recorded at shutdown: %s",
                      tally.payload(self.limit, self.window, self._ip_mode))  # fmt: skip
        await self._counts.aclose()

    async def flush(self, final: bool = False) -> None:
        """Write the summaries of ended windows (all of them, when ``final``)."""
        now = self._clock()
        ended = [key for key, tally in self._tallies.items()
                 if final or tally.window_start + self.window <= now]  # fmt: skip
        # Taken out before the write: a refusal counted meanwhile (an open
        # window at shutdown) starts a summary of its own, never lost.
        due = [self._tallies.pop(key) for key in ended] + self._retry
        self._retry = []
        # All at once: they share group commits (a thousand addresses' summaries
        # are a few commits, not a thousand in a row).
        payloads = [t.payload(self.limit, self.window, self._ip_mode) for t in due]
        results = await asyncio.gather(*(
            self._audit.record_event(KIND, payload, record_id=tally.record_id)
            for tally, payload in zip(due, payloads, strict=True)
        ), return_exceptions=True)  # fmt: skip
        for tally, payload, result in zip(due, payloads, results, strict=True):
            if isinstance(result, AuditUnavailable):
                log.error("cannot record a summary of %d unauthenticated refusals from %s "
                          "(retried): %s", tally.refused, tally.client, result)  # fmt: skip
                self._retry.append(tally)
            elif isinstance(result, BaseException):
                # Not the store: retrying would fail alike. Loud, with the counts.
                log.error("cannot record a summary of unauthenticated refusals %s: %r",
                          payload, result)  # fmt: skip
            else:
                log.warning("%d unauthenticated refusals from %s past the limit of %d in %d s "
                            "summarised in record %s", tally.refused, tally.client, self.limit,
                            self.window, tally.record_id)  # fmt: skip
