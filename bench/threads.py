"""Where a target's CPU goes, per thread: ``python -m bench.threads``.

Starts the fast upstream and one target (``gateway`` by default, or ``bare``),
runs wrk at one load point, and prints CPU microseconds per request for each
of the target's threads (from ``/proc/PID/task/*/stat``). The main table of
``python -m bench`` gives the process total; this splits it, e.g. the event
loop versus the audit SQLite thread, which is what to look at before and
after a change to the request path.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import httpx

from bench.procs import ProcessGroup, raise_fd_limit
from bench.targets import chat_body, request_headers, start_bare, start_gateway, start_upstream
from bench.wrk import run_wrk, write_script

_TICKS = os.sysconf("SC_CLK_TCK")


def _switches(task: Path) -> int:
    """Voluntary + involuntary context switches of one thread so far."""
    total = 0
    for line in (task / "status").read_text().splitlines():
        if "ctxt_switches:" in line:
            total += int(line.split()[-1])
    return total


def thread_switches(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[task.name] = _switches(task)
        except OSError:
            continue
    return out


def thread_cpu(pid: int) -> dict[str, tuple[float, float]]:
    """CPU seconds (user, system) per thread of ``pid``."""
    out: dict[str, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        # Python does not name its OS threads: tell the event loop (the main
        # thread, tid == pid) from the others by id.
        name = "main (event loop)" if task.name == str(pid) else f"thread {task.name}"
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) / _TICKS, int(fields[12]) / _TICKS)
    return out


def _audit_metrics(url: str) -> str:
    """Mean audit batch size and commit wait since start, from ``/metrics``."""
    text = httpx.get(url + "/metrics", timeout=10).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith(("gateway_audit_batch_size_", "gateway_audit_commit_seconds_")):
            values[name] = float(value)
    batches = values.get("gateway_audit_batch_size_count", 0.0)
    if not batches:
        return ""
    records = values["gateway_audit_batch_size_sum"]
    waits = values.get("gateway_audit_commit_seconds_count", 0.0) or 1.0
    wait_ms = values.get("gateway_audit_commit_seconds_sum", 0.0) * 1000 / waits
    return (f"  audit: {batches:.0f} batches, {records / batches:.1f} records/batch, "
            f"a request waited {wait_ms:.3f} ms for its commit on average")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="gateway", choices=["gateway", "bare"])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        workdir = Path(tmp)
        group = ProcessGroup(workdir)
        try:
            upstream = start_upstream(group, "0")
            extra = dict(item.split("=", 1) for item in args.gateway_env)
            if args.target == "gateway":
                proc, key = start_gateway(group, upstream, "1", workdir, extra)
            else:
                proc, key = start_bare(group, upstream, "1"), "none"
            script = write_script(workdir / "post.lua", chat_body(False), request_headers(key))
            url = proc.url + "/v1/chat/completions"
            run_wrk(url, script, args.connections, 2, "0")  # warm-up
            before = thread_cpu(proc.popen.pid)
            switches_before = thread_switches(proc.popen.pid)
            result = run_wrk(url, script, args.connections, args.duration, "0")
            after = thread_cpu(proc.popen.pid)
            switches_after = thread_switches(proc.popen.pid)
            metrics = _audit_metrics(proc.url) if args.target == "gateway" else ""
        finally:
            group.stop_all()
    print(f"{args.target} c={args.connections}: {result.rps:.0f} req/s, "
          f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, errors {result.error_count}")
    per_req = 1e6 / result.requests
    rows = []
    for name, (user, system) in after.items():
        user0, system0 = before.get(name, (0.0, 0.0))
        rows.append((name, (user - user0) * per_req, (system - system0) * per_req))
    rows.sort(key=lambda row: row[1] + row[2], reverse=True)
    print(f"  {'thread':<20} {'user':>8} {'system':>8}  us/req")
    for name, user_us, system_us in rows:
        if user_us + system_us > 0:
            print(f"  {name:<20} {user_us:8.1f} {system_us:8.1f}")
    print(f"  {'total':<20} {sum(r[1] for r in rows):8.1f} {sum(r[2] for r in rows):8.1f}")
    switches = sum(switches_after.values()) - sum(switches_before.values())
    print(f"  context switches: {switches / result.requests:.1f} per request (all threads)")
    if metrics:
        print(metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
