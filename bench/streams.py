"""Concurrent SSE streams: time to first event and total time per stream.

A raw asyncio protocol on uvloop rather than an HTTP client library: it only
timestamps bytes as they arrive and looks for the end of the chunked body, so
500 streams of paced chunks cost the measuring process very little CPU and its
own overhead stays out of the figures. All connections are opened first; then
every request is written in one burst, so "concurrent" means concurrent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

_DATA = b"data:"
_END = b"0\r\n\r\n"


class _StreamClient(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.sent = 0.0
        self.first = 0.0
        self.last = 0.0
        self.status = 0
        self.tail = b""
        self.events = 0
        self.head_done = False
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.sent = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self.tail + data
        if not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.tail = buf
                return
            self.head_done = True
            status_line = buf[: buf.find(b"\r\n")]
            self.status = int(status_line.split(b" ", 2)[1])
            buf = buf[end + 4 :]
            if self.status != 200:
                self._finish(f"status {self.status}")
                return
        if not self.first and _DATA in buf:
            self.first = now
        self.events += buf.count(_DATA)
        if buf.endswith(_END):
            self.last = now
            self._finish(None)
            return
        # Keep enough to see a marker split across two reads.
        self.tail = buf[-8:]

    def _finish(self, error: str | None) -> None:
        self.error = error
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.error = f"connection lost: {exc!r}"
            self.done.set_result(None)


@dataclass
class StreamStats:
    streams: int
    completed: int
    errors: list[str] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    events_min: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "streams": self.streams,
            "completed": self.completed,
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
            "events_min": self.events_min,
            "ttfb_ms": summary(self.ttfb_ms),
            "total_ms": summary(self.total_ms),
        }


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(percentile(ordered, 50), 2),
        "p90": round(percentile(ordered, 90), 2),
        "p99": round(percentile(ordered, 99), 2),
        "max": round(ordered[-1], 2) if ordered else float("nan"),
    }


async def run_streams(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    count: int,
    timeout: float,
) -> StreamStats:
    loop = asyncio.get_running_loop()
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"content-length: {len(body)}\r\n\r\n"
    request = head.encode() + body
    clients: list[_StreamClient] = []
    stats = StreamStats(streams=count, completed=0)

    async def connect() -> _StreamClient | None:
        client = _StreamClient(loop.create_future())
        try:
            await loop.create_connection(lambda: client, "127.0.0.1", port)
        except OSError as exc:
            stats.errors.append(f"connect: {exc!r}")
            return None
        return client

    for client in await asyncio.gather(*(connect() for _ in range(count))):
        if client is not None:
            clients.append(client)
    for client in clients:
        client.send(request)
    futures = [c.done for c in clients]
    _, pending = await asyncio.wait(futures, timeout=timeout) if futures else (set(), set())
    for client in clients:
        if client.done in pending:
            stats.errors.append("timeout")
            if client.transport is not None:
                client.transport.abort()
            continue
        if client.error is not None:
            stats.errors.append(client.error)
            continue
        stats.completed += 1
        stats.ttfb_ms.append((client.first - client.sent) * 1000)
        stats.total_ms.append((client.last - client.sent) * 1000)
    done_events = [c.events for c in clients if c.error is None and c.done not in pending]
    stats.events_min = min(done_events) if done_events else 0
    return stats
