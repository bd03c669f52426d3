"""One "replica" in its own process: ``python -m tests.quota.replica_worker URL N``.

Connects, prints ``ready``, waits for a line on stdin (the start signal, sent
to every replica at once), fires N admissions in 4 concurrent lanes for one customer
against the shared Redis (requests_per_minute 50, tokens_per_minute 10000,
300 tokens each) and prints how many were allowed.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from gateway.quota.meter import Meter
from gateway.quota.redis_store import RedisStore
from tests.quota.helpers import plan

PLAN = plan(("default", "requests_per_minute", 50), ("default", "tokens_per_minute", 10_000))


async def main(url: str, n: int) -> int:
    meter = Meter(RedisStore(url, socket_timeout=5.0))
    # Open n connections before the start signal, so both replicas really race.
    await asyncio.gather(*(meter.store.ping() for _ in range(n)))
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def lane(count: int) -> int:
        # Spread over ~0.2 s so the two processes interleave rather than one
        # finishing before the other has woken up.
        allowed = 0
        for _ in range(count):
            admission = await meter.admit("shared", PLAN, False, 300, datetime.now(UTC))
            allowed += admission.allowed
            await asyncio.sleep(0.01)
        return allowed

    lanes = await asyncio.gather(*(lane(n // 4) for _ in range(4)))
    await meter.aclose()
    return sum(lanes)


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1], int(sys.argv[2]))), flush=True)
