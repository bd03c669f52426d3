"""One "replica" in its own process: ``python -m tests.quota.replica_worker URL START N``.

Waits until wall-clock START, fires N concurrent admissions for one customer
against the shared Redis (requests_per_minute 50, tokens_per_minute 10000,
300 tokens each) and prints how many were allowed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime

from gateway.quota.meter import Meter
from gateway.quota.redis_store import RedisStore
from tests.quota.helpers import plan

PLAN = plan(("default", "requests_per_minute", 50), ("default", "tokens_per_minute", 10_000))


async def main(url: str, start: float, n: int) -> int:
    meter = Meter(RedisStore(url, socket_timeout=5.0))
    await meter.ping()  # connect before the start line
    await asyncio.sleep(max(start - time.time(), 0))
    now = datetime.now(UTC)
    results = await asyncio.gather(
        *(meter.admit("shared", PLAN, False, 300, now) for _ in range(n))
    )
    await meter.aclose()
    return sum(1 for a in results if a.allowed)


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))))
