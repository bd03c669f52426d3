"""Turn the raw results into the markdown tables the README quotes, and check targets."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
        capture_output=True, text=True, check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit + ("+dirty" if dirty else ""),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _f(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}"


def load_table(load: dict[str, dict[str, dict[str, Any]]], targets: list[str]) -> str:
    lines = [
        "| target | conns | req/s | p50 ms | p90 ms | p99 ms | added p50 | added p90 | added p99 "
        "| req/s vs bare | CPU us/req | CPU % | errors | other CPU % |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for conns in load:
        point = load[conns]
        direct = point.get("direct")
        bare = point.get("bare")
        for name in targets:
            r = point.get(name)
            if r is None:
                continue
            added = {
                p: (r[f"{p}_ms"] - direct[f"{p}_ms"]) if direct and name != "direct" else None
                for p in ("p50", "p90", "p99")
            }
            ratio = r["rps"] / bare["rps"] if bare and bare["rps"] and name != "direct" else None
            errors = sum(r["errors"].values())
            lines.append(
                f"| {name} | {conns} | {r['rps']:.0f} | {_f(r['p50_ms'])} | {_f(r['p90_ms'])} "
                f"| {_f(r['p99_ms'])} | {_signed(added['p50'])} | {_signed(added['p90'])} "
                f"| {_signed(added['p99'])} | {_f(ratio)} | {_f(r.get('cpu_us_per_req'), 0)} "
                f"| {_f(r.get('cpu_pct'), 0)} | {errors} "
                f"| {_f(r['foreign_cpu_pct'], 0)} |"
            )
    return "\n".join(lines)


def stream_table(streams: dict[str, dict[str, dict[str, Any]]], targets: list[str]) -> str:
    lines = [
        "| target | streams | TTFB p50 ms | TTFB p99 ms | added TTFB p50 | total p50 ms "
        "| total p99 ms | total p50 vs direct | completed | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for count in streams:
        point = streams[count]
        direct = point.get("direct")
        for name in targets:
            s = point.get(name)
            if s is None:
                continue
            ttfb, total = s["ttfb_ms"], s["total_ms"]
            added = ttfb["p50"] - direct["ttfb_ms"]["p50"] if direct and name != "direct" else None
            slower = None
            if direct and name != "direct" and direct["total_ms"]["p50"]:
                slower = 100 * (total["p50"] / direct["total_ms"]["p50"] - 1)
            lines.append(
                f"| {name} | {count} | {_f(ttfb['p50'])} | {_f(ttfb['p99'])} | {_signed(added)} "
                f"| {_f(total['p50'], 1)} | {_f(total['p99'], 1)} "
                f"| {_signed(slower, 1) + ' %' if slower is not None else '-'} "
                f"| {s['completed']}/{s['streams']} | {s['errors']} |"
            )
    return "\n".join(lines)


def memory_table(memory: dict[str, dict[str, float]]) -> str:
    lines = ["| process | peak RSS MB | RSS after streams MB |", "|---|--:|--:|"]
    for name, m in memory.items():
        lines.append(f"| {name} | {m['peak_rss_mb']:.1f} | {m['rss_mb']:.1f} |")
    return "\n".join(lines)


def check_targets(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(goal, measured, target, met) rows for the issue's targets, per gateway variant."""
    rows: list[tuple[str, str, str, bool | None]] = []
    names = results["config"].get("targets", [])
    for name in [n for n in names if n.startswith("gateway")]:
        rows += _check_one(results, name)
    return rows


def _check_one(results: dict[str, Any], gw: str) -> list[tuple[str, str, str, bool | None]]:
    load, streams, memory = results["load"], results["streams"], results["memory"]
    rows: list[tuple[str, str, str, bool | None]] = []

    def get(conns: str, name: str) -> dict[str, Any] | None:
        point: dict[str, Any] | None = load.get(conns, {}).get(name)
        return point

    gw8, bare8 = get("8", gw), get("8", "bare")
    if gw8 and bare8:
        ratio = gw8["rps"] / bare8["rps"]
        rows.append((f"{gw}: req/s at 8 conns vs bare", f"{100 * ratio:.0f} %", ">= 60 %",
                     ratio >= 0.6))
    gw1, d1 = get("1", gw), get("1", "direct")
    if gw1 and d1:
        a50, a99 = gw1["p50_ms"] - d1["p50_ms"], gw1["p99_ms"] - d1["p99_ms"]
        rows.append((f"{gw}: added p50 at 1 conn", f"{a50:.2f} ms", "< 0.8 ms", a50 < 0.8))
        rows.append((f"{gw}: added p99 at 1 conn", f"{a99:.2f} ms", "< 2 ms", a99 < 2.0))
    d8 = get("8", "direct")
    if gw8 and d8:
        a99 = gw8["p99_ms"] - d8["p99_ms"]
        rows.append((f"{gw}: added p99 at 8 conns", f"{a99:.2f} ms", "< 6 ms", a99 < 6.0))
    if any(sum(p["errors"].values()) for p in (get(c, gw) for c in load) if p):
        rows.append((f"{gw}: load errors", "non-2xx or socket errors", "0", False))
    s50 = streams.get("50", {})
    if gw in s50 and "direct" in s50:
        g, d = s50[gw], s50["direct"]
        added = g["ttfb_ms"]["p50"] - d["ttfb_ms"]["p50"]
        rows.append((f"{gw}: 50 streams, added TTFB p50", f"{added:.1f} ms", "<= 25 ms",
                     added <= 25))
        slower = 100 * (g["total_ms"]["p50"] / d["total_ms"]["p50"] - 1)
        rows.append((f"{gw}: 50 streams, total p50 vs direct", f"{slower:+.1f} %", "within 5 %",
                     slower <= 5))
    s500 = streams.get("500", {})
    if gw in s500:
        g = s500[gw]
        ok = g["errors"] == 0 and g["completed"] == g["streams"]
        rows.append((f"{gw}: 500 streams, errors",
                     f"{g['errors']} ({g['completed']}/{g['streams']} done)", "0", ok))
    if gw in memory:
        rss = memory[gw]["rss_mb"]
        rows.append((f"{gw}: RSS after streams", f"{rss:.0f} MB", "< 120 MB", rss < 120))
    rows += _versus_litellm(gw, get("8", gw), get("8", "litellm"), get("1", gw),
                            get("1", "litellm"), d1)
    return rows


def _versus_litellm(gw: str, gw8: dict[str, Any] | None, ll8: dict[str, Any] | None,
                    gw1: dict[str, Any] | None, ll1: dict[str, Any] | None,
                    d1: dict[str, Any] | None) -> list[tuple[str, str, str, bool | None]]:
    """The issue's yardstick: doing more per request, still over 30 times the throughput."""
    rows: list[tuple[str, str, str, bool | None]] = []
    if gw8 and ll8 and ll8["rps"]:
        ratio = gw8["rps"] / ll8["rps"]
        rows.append((f"{gw}: req/s at 8 conns vs LiteLLM", f"{ratio:.1f}x", "> 30x",
                     ratio > 30))
    if gw1 and ll1 and d1:
        gw_added, ll_added = gw1["p50_ms"] - d1["p50_ms"], ll1["p50_ms"] - d1["p50_ms"]
        if gw_added > 0:
            ratio = ll_added / gw_added
            # For reference, not one of the targets.
            rows.append((f"{gw}: added p50 at 1 conn vs LiteLLM's", f"{ratio:.1f}x lower",
                         "-", None))
    return rows


def targets_table(rows: list[tuple[str, str, str, bool | None]]) -> str:
    lines = ["| target | measured | goal | met |", "|---|--:|--:|:-:|"]
    for goal, measured, want, met in rows:
        mark = "-" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {goal} | {measured} | {want} | {mark} |")
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    cfg = results["config"]
    targets = cfg["targets"]
    parts = [
        f"Machine: {m['cpus']} CPUs, {m['cpu_model']}, Linux {m['kernel']}, Python {m['python']}, "
        f"commit {m['commit']}; load average at start {m['loadavg_at_start']}.",
        f"Config: {cfg['duration']} s per point, {cfg['rounds']} round(s), interleaved; "
        f"pinning: {cfg['pinning']}; streams of {cfg['stream_chunks']} chunks "
        f"{cfg['stream_interval_ms']} ms apart."
        + "".join(f" {k}: {' '.join(f'{e}={v}' for e, v in env.items())}."
                  for k, env in cfg.get("variants", {}).items() if env),
    ]
    if results["load"]:
        parts += ["", "Non-streaming POST /v1/chat/completions (closed loop, wrk):", "",
                  load_table(results["load"], targets)]
    if results["streams"]:
        parts += ["", "Streaming (all streams started at once):", "",
                  stream_table(results["streams"], targets)]
    if results["memory"]:
        parts += ["", "Memory:", "", memory_table(results["memory"])]
    if results.get("notes"):
        parts += ["", "Notes:", *[f"- {n}" for n in results["notes"]]]
    rows = check_targets(results)
    if rows:
        parts += ["", "Targets (issue 8):", "", targets_table(rows)]
    return "\n".join(parts)
