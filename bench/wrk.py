"""Closed-loop HTTP load with wrk: POST bodies and headers from a generated Lua
script, exact latency percentiles from wrk's own histogram, as JSON.

Why wrk and not a Python client: on this 2-core machine the load generator
shares CPUs with the upstream and the proxy under test. wrk (C, epoll) spends
a few microseconds of CPU per request; an aiohttp client spends ~100 us, which
at 4k req/s is half a core taken from the proxy under test, and its own event
loop delays land in the latency it reports. wrk's histogram records every
request's latency in microseconds (``latency:percentile``), so p50/p90/p99 are
real percentiles, not estimates.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.procs import pinned

_MARK = "BENCH_JSON "


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_script(path: Path, body: bytes, headers: dict[str, str]) -> Path:
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {_lua_string(body.decode())}",
    ]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    lines.append(
        """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    MARK, summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
""".replace("MARK", _lua_string(_MARK))
    )
    path.write_text("\n".join(lines))
    return path


@dataclass
class WrkResult:
    connections: int
    requests: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "connections": self.connections,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "errors": self.errors,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "p999_ms": self.p999_ms,
            "max_ms": self.max_ms,
        }


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian/Ubuntu)")
    return found


def run_wrk(
    url: str, script: Path, connections: int, seconds: float, cpus: str | None
) -> WrkResult:
    # One thread: at these rates one wrk thread uses a few % of a core, and a
    # second thread would only compete with the servers for the 2 CPUs.
    cmd = [
        wrk_path(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", str(script), url,
    ]
    out = subprocess.run(
        pinned(cmd, cpus), capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    for line in out.stdout.splitlines():
        if line.startswith(_MARK):
            doc = json.loads(line[len(_MARK):])
            break
    else:
        raise RuntimeError(f"wrk gave no result (rc={out.returncode}):\n{out.stdout}\n{out.stderr}")
    return WrkResult(
        connections=connections,
        requests=int(doc["requests"]),
        seconds=doc["duration_us"] / 1e6,
        errors={k: int(v) for k, v in doc["errors"].items()},
        p50_ms=doc["p50_us"] / 1000,
        p90_ms=doc["p90_us"] / 1000,
        p99_ms=doc["p99_us"] / 1000,
        p999_ms=doc["p999_us"] / 1000,
        max_ms=doc["max_us"] / 1000,
    )
