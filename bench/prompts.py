"""Memory under long streams with big prompts: ``python -m bench.prompts``.

The main harness streams a one-line prompt, which says nothing about what a
proxy holds per stream. Agentic clients send the whole conversation on every
call (hundreds of KB), and their streams last minutes. This starts the fast
upstream, the bare proxy and the gateway (each on the same core), opens N
streams at once, each with a K KB prompt and paced chunks, and prints each
proxy's RSS before, its peak (the kernel's high-water mark), and after.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import orjson
import uvloop

from bench.procs import Proc, ProcessGroup, raise_fd_limit
from bench.streams import run_streams
from bench.targets import MODEL, request_headers, start_bare, start_gateway, start_upstream


def prompt_body(kilobytes: int) -> bytes:
    words = "lorem ipsum dolor sit amet " * (kilobytes * 1024 // 27 + 1)
    return orjson.dumps({"model": MODEL, "stream": True, "max_tokens": 64,
                         "messages": [{"role": "user", "content": words[: kilobytes * 1024]}]})


def measure(proc: Proc, key: str, body: bytes, streams: int, chunks: int,
            interval_ms: int) -> tuple[float, float, float, int]:
    """(RSS before, peak RSS, RSS after) in MB, and the number of failed streams."""
    headers = request_headers(key)
    headers["x-standin-chunks"] = str(chunks)
    headers["x-standin-interval-ms"] = str(interval_ms)
    before = proc.rss_mb()
    stats = uvloop.run(run_streams(proc.port, "/v1/chat/completions", body, headers, streams,
                                   timeout=60 + chunks * interval_ms / 1000))
    return before, proc.peak_rss_mb(), proc.rss_mb(), len(stats.errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--prompt-kb", type=int, default=256)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--interval-ms", type=int, default=50)
    args = parser.parse_args()
    raise_fd_limit()
    cpus = sorted(os.sched_getaffinity(0))
    sut, load = (str(cpus[-1]), str(cpus[0])) if len(cpus) > 1 else (None, None)
    body = prompt_body(args.prompt_kb)
    print(f"{args.streams} streams at once, {len(body) // 1024} KB request bodies, "
          f"{args.chunks} chunks {args.interval_ms} ms apart")
    print(f"  {'target':<8} {'RSS before':>11} {'peak':>8} {'after':>8} {'failed':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-prompts-") as tmp:
        group = ProcessGroup(Path(tmp))
        try:
            upstream = start_upstream(group, load)
            targets = [("bare", start_bare(group, upstream, sut), "none")]
            gateway, key = start_gateway(group, upstream, sut, Path(tmp), {})
            targets.append(("gateway", gateway, key))
            for name, proc, target_key in targets:
                before, peak, after, failed = measure(proc, target_key, body, args.streams,
                                                      args.chunks, args.interval_ms)
                print(f"  {name:<8} {before:8.1f} MB {peak:5.1f} MB {after:5.1f} MB {failed:7d}")
        finally:
            group.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
