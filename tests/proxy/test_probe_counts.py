"""The unauthenticated-refusal counts (``gateway.proxy.probe_counts``): one
count per address and window across processes through a real Redis, the
process's own count when Redis is gone, and IPv6 counted per /64."""

from __future__ import annotations

from gateway.proxy.probe_counts import ProbeCounts, client_key
from tests.support.redis_server import RedisServer


def test_ipv6_is_counted_per_64_and_ipv4_as_itself() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key(None) == "unknown"


async def test_two_processes_share_one_count_per_window() -> None:
    with RedisServer() as server:
        first, second = ProbeCounts(server.url), ProbeCounts(server.url)
        try:
            counts = [await (first if i % 2 else second).hit("9.9.9.9", 600, 60)
                      for i in range(6)]  # fmt: skip
            assert counts == [1, 2, 3, 4, 5, 6]
            assert await first.hit("9.9.9.9", 660, 60) == 1  # the next window starts anew
            assert await second.hit("8.8.8.8", 660, 60) == 1  # another address too
        finally:
            await first.aclose()
            await second.aclose()


async def test_without_redis_the_process_counts_alone() -> None:
    with RedisServer() as server:
        counts = ProbeCounts(server.url)
        try:
            assert await counts.hit("9.9.9.9", 600, 60) == 1
            server.stop()
            assert [await counts.hit("9.9.9.9", 600, 60) for _ in range(2)] == [2, 3]
        finally:
            await counts.aclose()
