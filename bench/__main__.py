"""``python -m bench``: direct vs bare proxy vs gateway, interleaved, one table.

Starts the fast upstream, the bare proxy and the gateway as separate
processes (pinned: proxies on one CPU, upstream and load generators on the
other), then measures each load point for every target back to back, so that
background load on the shared machine lands on all of them alike. Prints a
markdown table and writes the raw results as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.procs import CpuMeter, Proc, ProcessGroup, raise_fd_limit
from bench.streams import run_streams, summary
from bench.targets import (
    chat_body,
    check_target,
    litellm_command,
    request_headers,
    start_bare,
    start_gateway,
    start_litellm,
    start_upstream,
)
from bench.wrk import run_wrk, write_script, wrk_path

RESULTS = Path(__file__).resolve().parent / "results"
ALL_TARGETS = ("direct", "bare", "bare-fastapi", "gateway", "gateway-normal", "litellm")
# Gateway variants: another `gateway serve` with extra environment, measured as
# its own column. More with --variant NAME:KEY=VALUE[,KEY=VALUE...].
BUILTIN_VARIANTS = {"gateway": {}, "gateway-normal": {"GATEWAY_SQLITE_SYNCHRONOUS": "NORMAL"}}


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    env = dict(kv.split("=", 1) for kv in assignments.split(",") if "=" in kv)
    if not name or not env:
        raise argparse.ArgumentTypeError("expected NAME:KEY=VALUE[,KEY=VALUE...]")
    return f"gateway-{name}", env


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=3, help="seconds per load point (default 3)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved repetitions of every load point; medians reported (default 3)")
    p.add_argument("--warmup", type=float, default=1, help="seconds of warm-up per target")
    p.add_argument("--connections", type=_ints, default=[1, 8, 32])
    p.add_argument("--streams", type=_ints, default=[50, 500])
    p.add_argument("--stream-chunks", type=int, default=20)
    p.add_argument("--stream-interval-ms", type=int, default=50)
    p.add_argument("--targets", default=None,
                   help=f"comma-separated, from {','.join(ALL_TARGETS)} (default: direct, "
                        "bare, gateway, and litellm when its command is installed)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for every gateway variant (repeatable)")
    p.add_argument("--variant", action="append", type=_variant, default=[],
                   metavar="NAME:KEY=VALUE[,...]",
                   help="also measure gateway-NAME, a gateway with this extra environment "
                        "(repeatable), e.g. nolinger:GATEWAY_AUDIT_BATCH_WAIT_MS=0")
    p.add_argument("--skip-streams", action="store_true")
    p.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                   help="after the run, py-spy record the gateway under 8-connection load")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--keep", action="store_true",
                   help="keep the scratch directory (process logs, gateway database)")
    args = p.parse_args(argv)
    if args.targets is None:
        args.targets = "direct,bare,gateway" + (",litellm" if litellm_command() else "")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    args.variants = {**BUILTIN_VARIANTS, **dict(args.variant)}
    args.targets += [name for name in dict(args.variant) if name not in args.targets]
    unknown = set(args.targets) - set(ALL_TARGETS) - set(args.variants)
    if unknown:
        p.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if "direct" not in args.targets:
        args.targets.insert(0, "direct")
    return args


def _layout(no_pin: bool) -> tuple[str | None, str | None]:
    """(CPUs for proxies, CPUs for upstream + load generators)."""
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2:
        return None, None
    return str(cpus[-1]), ",".join(str(c) for c in cpus[:-1])


def _median_point(samples: list[dict[str, Any]]) -> dict[str, Any]:
    if len(samples) == 1:
        return samples[0]
    out = dict(samples[0])
    for key in ("rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "foreign_cpu_pct",
                "machine_busy_pct", "cpu_us_per_req", "cpu_pct"):
        out[key] = statistics.median(s[key] for s in samples)
    out["errors"] = {k: sum(s["errors"][k] for s in samples) for k in samples[0]["errors"]}
    out["rounds"] = [{k: s[k] for k in ("rps", "p50_ms", "p99_ms")} for s in samples]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk_path()
    raise_fd_limit()
    sut_cpus, load_cpus = _layout(args.no_pin)
    if load_cpus is not None:
        os.sched_setaffinity(0, {int(c) for c in load_cpus.split(",")})
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    group = ProcessGroup(workdir)
    started = time.monotonic()
    notes: list[str] = []
    results: dict[str, Any] = {
        "machine": report.machine(),
        "config": {
            "duration": args.duration, "rounds": args.rounds, "connections": args.connections,
            "streams": args.streams, "stream_chunks": args.stream_chunks,
            "stream_interval_ms": args.stream_interval_ms,
            "pinning": (f"proxies on CPU {sut_cpus}, upstream and load generators on CPU "
                        f"{load_cpus}") if sut_cpus else "none",
            "gateway_env": args.gateway_env,
            "variants": {k: v for k, v in args.variants.items() if k in args.targets},
        },
        "load": {}, "streams": {}, "memory": {}, "notes": notes,
    }
    try:
        procs, keys = _start_all(args, group, sut_cpus, load_cpus, workdir, notes)
        targets = [t for t in args.targets if t in procs]
        results["config"]["targets"] = targets
        _measure_load(args, procs, targets, keys, workdir, load_cpus, results)
        if not args.skip_streams:
            _measure_streams(args, procs, targets, keys, results)
        for name, proc in procs.items():
            results["memory"][name if name != "direct" else "upstream"] = {
                "peak_rss_mb": round(proc.peak_rss_mb(), 1), "rss_mb": round(proc.rss_mb(), 1),
            }
        if args.profile and "gateway" in procs:
            notes.append(_profile(args, procs["gateway"], keys["gateway"], workdir, load_cpus))
    except BaseException:
        print(f"process logs kept in {workdir}", file=sys.stderr)
        args.keep = True
        raise
    finally:
        group.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.keep:
        notes.append(f"scratch directory (logs, gateway database): {workdir}")
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_file = args.out / f"bench-{stamp}.json"
    out_file.write_text(json.dumps(results, indent=2))
    (args.out / "latest.json").write_text(json.dumps(results, indent=2))
    text = report.render(results)
    (args.out / "latest.md").write_text(text + "\n")
    print(text)
    print(f"\n(raw results: {out_file}; run took {results['elapsed_s']} s)", file=sys.stderr)
    return 0


def _start_all(args: argparse.Namespace, group: ProcessGroup, sut_cpus: str | None,
               load_cpus: str | None, workdir: Path,
               notes: list[str]) -> tuple[dict[str, Proc], dict[str, str]]:
    """The running targets and the API key each one is sent (the same for all
    but the gateways, each of which issues its own)."""
    upstream = start_upstream(group, load_cpus)
    procs: dict[str, Proc] = {"direct": upstream}
    keys: dict[str, str] = {}
    if "bare" in args.targets:
        procs["bare"] = start_bare(group, upstream, sut_cpus)
    if "bare-fastapi" in args.targets:
        procs["bare-fastapi"] = start_bare(group, upstream, sut_cpus, mode="fastapi")
    for name, variant in args.variants.items():
        if name not in args.targets:
            continue
        extra = {**variant, **dict(kv.split("=", 1) for kv in args.gateway_env)}
        try:
            procs[name], keys[name] = start_gateway(group, upstream, sut_cpus, workdir,
                                                    extra, name)
        except (RuntimeError, TimeoutError) as exc:
            first = str(exc).strip().splitlines()
            notes.append(f"{name} not measured, it did not start: " + " / ".join(first[-3:]))
            print(f"{name} did not start:\n{exc}", file=sys.stderr)
    if "litellm" in args.targets:
        _start_litellm(group, upstream, sut_cpus, workdir, notes, procs, keys)
    default_key = next(iter(keys.values()), "bench-no-key")
    for name, proc in list(procs.items()):
        keys.setdefault(name, default_key)
        problem = check_target(name, proc, keys[name])
        if problem is not None:
            notes.append(f"{name} not measured, its sanity request failed: {problem}")
            print(problem, file=sys.stderr)
            del procs[name]
    return procs, keys


def _start_litellm(group: ProcessGroup, upstream: Proc, sut_cpus: str | None, workdir: Path,
                   notes: list[str], procs: dict[str, Proc], keys: dict[str, str]) -> None:
    command = litellm_command()
    if command is None:
        notes.append("litellm not measured: no `litellm` command (install `litellm[proxy]` "
                      "in a virtualenv of its own and put it on PATH or in BENCH_LITELLM)")
        return
    try:
        procs["litellm"], keys["litellm"] = start_litellm(group, upstream, sut_cpus, workdir,
                                                          command)
    except (RuntimeError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()
        notes.append("litellm not measured, it did not start: " + " / ".join(first[-3:]))
        print(f"litellm did not start:\n{exc}", file=sys.stderr)


def _measure_load(args: argparse.Namespace, procs: dict[str, Proc], targets: list[str],
                  keys: dict[str, str], workdir: Path, load_cpus: str | None,
                  results: dict[str, Any]) -> None:
    scripts = {
        name: write_script(workdir / f"post-{name}.lua", chat_body(False),
                           request_headers(keys[name]))
        for name in targets
    }
    url = "/v1/chat/completions"
    servers = list(procs.values())
    for name in targets:
        if args.warmup > 0:
            run_wrk(procs[name].url + url, scripts[name], 8, args.warmup, load_cpus)
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for _ in range(args.rounds):
        for conns in args.connections:
            for name in targets:
                meter = CpuMeter(servers)
                meter.start()
                cpu0 = procs[name].cpu_seconds()
                r = run_wrk(procs[name].url + url, scripts[name], conns, args.duration,
                            load_cpus)
                cpu = procs[name].cpu_seconds() - cpu0
                point = {**r.as_dict(), **meter.stop(),
                         # CPU the target itself spent: robust to other load on the machine.
                         "cpu_us_per_req": round(1e6 * cpu / max(r.requests, 1), 1),
                         "cpu_pct": round(100 * cpu / max(r.seconds, 1e-9), 1)}
                samples.setdefault(str(conns), {}).setdefault(name, []).append(point)
                print(f"  {name:>12} c={conns:<3} {r.rps:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  "
                      f"p99 {r.p99_ms:6.2f} ms  {point['cpu_us_per_req']:6.0f} us CPU/req  "
                      f"errors {r.error_count}  "
                      f"other CPU {point['foreign_cpu_pct']:.0f} %", file=sys.stderr)
    results["load"] = {c: {n: _median_point(s) for n, s in by.items()} for c, by in samples.items()}


def _measure_streams(args: argparse.Namespace, procs: dict[str, Proc], targets: list[str],
                     keys: dict[str, str], results: dict[str, Any]) -> None:
    body = chat_body(True)
    nominal = args.stream_chunks * args.stream_interval_ms / 1000
    import uvloop

    for count in args.streams:
        for name in targets:
            headers = request_headers(keys[name])
            headers["x-standin-chunks"] = str(args.stream_chunks)
            headers["x-standin-interval-ms"] = str(args.stream_interval_ms)
            stats = uvloop.run(run_streams(procs[name].port, "/v1/chat/completions", body,
                                           headers, count, timeout=30 + 4 * nominal))
            point = stats.as_dict()
            results["streams"].setdefault(str(count), {})[name] = point
            ttfb, total = summary(stats.ttfb_ms), summary(stats.total_ms)
            print(f"  {name:>12} streams={count:<4} ttfb p50 {ttfb['p50']:7.2f} ms "
                  f"total p50 {total['p50']:8.1f} ms  errors {len(stats.errors)}",
                  file=sys.stderr)
            time.sleep(0.3)  # let closed connections drain before the next target


def _profile(args: argparse.Namespace, gateway: Proc, key: str, workdir: Path,
             load_cpus: str | None) -> str:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return "profile skipped: py-spy is not installed (.venv/bin/pip install py-spy)"
    out = args.out / "gateway-profile.txt"
    script = write_script(workdir / "post.lua", chat_body(False), request_headers(key))
    # Raw collapsed stacks: `python -m bench.profile_summary` reads them;
    # flamegraph tools (or speedscope) render them.
    spy_proc = subprocess.Popen(
        [str(spy), "record", "--pid", str(gateway.popen.pid), "--rate", "500",
         "--duration", str(int(args.profile)), "--nonblocking", "--format", "raw",
         "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    run_wrk(gateway.url + "/v1/chat/completions", script, 8, args.profile, load_cpus)
    spy_proc.wait(30)
    return f"profile of the gateway at 8 connections: {out} (collapsed stacks)"


if __name__ == "__main__":
    raise SystemExit(main())
