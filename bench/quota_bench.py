"""Quota meter cost: microseconds per admit + settle, memory and a real Redis.

    .venv/bin/python -m bench.quota_bench [--n 30000] [--redis-n 3000] [--no-redis]

Each iteration is what the pipeline does for one request: ``meter.admit``
(check and consume every counter of the plan, build the headers and the audit
summary), then ``meter.settle`` with real usage below the reservation. Requests
are dated 600 per second of simulated time, so the windows fill the way a busy
customer's do (limits are set high enough that nothing is refused). Reported:
CPU time of this process per iteration (for Redis the server's own time is not
in it) and wall time per iteration (for Redis, one request at a time, so this
is the round-trip latency).

Scenarios:

* ``typical``: requests_per_minute + tokens_per_minute + tokens_per_day, not
  streaming (the shape of the default bundle's tiers);
* ``stream``: the same plus an agentic bucket with requests_per_minute and
  concurrent_streams, streaming (takes and releases a lease).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.policy.decision import QuotaKind, QuotaLimit, QuotaPlan
from gateway.quota.memory import MemoryStore
from gateway.quota.meter import Meter
from gateway.quota.store import QuotaStore
from gateway.stages import Usage

BIG = 10**11
RATE = 600.0  # simulated requests per second
T0 = 1_800_000_000.0


def _plan(*limits: tuple[str, QuotaKind]) -> QuotaPlan:
    return QuotaPlan(
        tier="enterprise",
        limits=tuple(QuotaLimit(cap, kind, BIG) for cap, kind in limits),
        default_max_tokens=4096,
    )


def _typical() -> QuotaPlan:
    return _plan(
        ("default", "requests_per_minute"),
        ("default", "tokens_per_minute"),
        ("default", "tokens_per_day"),
    )


def _stream() -> QuotaPlan:
    return _plan(
        ("agentic", "requests_per_minute"),
        ("agentic", "concurrent_streams"),
        ("default", "tokens_per_minute"),
        ("default", "tokens_per_day"),
    )


SCENARIOS: dict[str, tuple[QuotaPlan, bool]] = {
    "typical": (_typical(), False),
    "stream": (_stream(), True),
}


async def run(store: QuotaStore, scenario: str, n: int) -> tuple[float, float]:
    """(CPU us, wall us) per admit + settle."""
    plan, streaming = SCENARIOS[scenario]
    sim = [T0]
    meter = Meter(store, clock=lambda: sim[0])
    usage = Usage(tokens_in=200, tokens_out=300)
    # A fresh plan object per request, as the policy engine builds one per decision.
    plans = [QuotaPlan(plan.tier, plan.limits, plan.default_max_tokens) for _ in range(64)]
    step = 1.0 / RATE
    warm = min(n // 10, 1000)
    cpu0 = wall0 = 0.0
    gc.collect()
    for i in range(n + warm):
        if i == warm:
            cpu0, wall0 = time.process_time(), time.perf_counter()
        sim[0] = T0 + i * step
        now = datetime.fromtimestamp(sim[0], UTC)
        admission = await meter.admit("bench-customer", plans[i & 63], streaming, 1200, now)
        if not admission.allowed:
            raise RuntimeError(f"{scenario}: refused at {i}: {admission.summary}")
        await meter.settle(admission, usage)
    cpu = (time.process_time() - cpu0) / n * 1e6
    wall = (time.perf_counter() - wall0) / n * 1e6
    await meter.aclose()
    return cpu, wall


async def main(args: argparse.Namespace) -> None:
    rows: list[tuple[str, str, int, float, float]] = []
    for scenario in SCENARIOS:
        cpu, wall = await run(MemoryStore(), scenario, args.n)
        rows.append(("memory", scenario, args.n, cpu, wall))
    if not args.no_redis:
        from gateway.quota.redis_store import RedisStore
        from tests.support.redis_server import RedisServer

        with RedisServer() as server:
            for scenario in SCENARIOS:
                store = RedisStore(server.url)
                await store._redis.flushall()
                cpu, wall = await run(store, scenario, args.redis_n)
                rows.append(("redis", scenario, args.redis_n, cpu, wall))
    print(f"{'store':<8}{'scenario':<10}{'n':>8}{'cpu us/req':>12}{'wall us/req':>13}")
    for store_name, scenario, n, cpu, wall in rows:
        print(f"{store_name:<8}{scenario:<10}{n:>8}{cpu:>12.1f}{wall:>13.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--redis-n", type=int, default=3_000)
    parser.add_argument("--no-redis", action="store_true")
    asyncio.run(main(parser.parse_args()))
