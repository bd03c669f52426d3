"""Request counters: exact limits, moving-window semantics, multi-bucket atomicity,
headers and refusal messages. Each test runs against memory and a real Redis."""

from __future__ import annotations

import json
from collections.abc import Callable

from gateway.policy.decision import QuotaLimit
from gateway.quota import describe_refusal
from gateway.quota.meter import Meter
from tests.quota.conftest import FakeClock
from tests.quota.helpers import at, plan, used

RPM = plan(("default", "requests_per_minute", 5))


async def test_exactly_the_limit_then_retry_after(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter()
    t0 = clock.now
    for i in range(5):
        admission = await meter.admit("c1", RPM, False, 0, at(t0 + i))
        assert admission.allowed, i
    refused = await meter.admit("c1", RPM, False, 0, at(t0 + 5))
    assert not refused.allowed
    assert refused.refused_by == QuotaLimit("default", "requests_per_minute", 5)
    # The oldest request (t0) leaves the moving window at t0 + 60.
    assert refused.retry_after_seconds == 55
    assert not (await meter.admit("c1", RPM, False, 0, at(t0 + 59.999))).allowed
    assert (await meter.admit("c1", RPM, False, 0, at(t0 + 60))).allowed
    # Another customer has buckets of its own.
    assert (await meter.admit("c2", RPM, False, 0, at(t0 + 5))).allowed


async def test_no_double_burst_at_a_window_boundary(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    """A fixed window would allow 5 at 0:59 and 5 more at 1:01; a moving one does not."""
    meter = make_meter()
    t0 = clock.now - clock.now % 60  # a minute boundary
    for _ in range(5):
        assert (await meter.admit("c1", RPM, False, 0, at(t0 + 59))).allowed
    after_boundary = [await meter.admit("c1", RPM, False, 0, at(t0 + 61)) for _ in range(5)]
    assert not any(a.allowed for a in after_boundary)
    assert after_boundary[0].retry_after_seconds == 58


async def test_a_refusal_consumes_nothing_in_any_bucket(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    both = plan(
        ("default", "requests_per_minute", 10),
        ("default", "tokens_per_minute", 1000),
        ("agentic", "requests_per_minute", 2),
    )
    meter = make_meter()
    now = at(clock.now)
    assert (await meter.admit("c1", both, False, 100, now)).allowed
    assert (await meter.admit("c1", both, False, 100, now)).allowed
    refused = await meter.admit("c1", both, False, 100, now)
    assert refused.refused_by == QuotaLimit("agentic", "requests_per_minute", 2)
    report = await meter.usage("c1", both)
    assert used(report, "default", "requests_per_minute") == 2
    assert used(report, "default", "tokens_per_minute") == 200
    assert used(report, "agentic", "requests_per_minute") == 2

    # Refused by the token bucket: no request is counted either.
    tokens_only = plan(
        ("default", "requests_per_minute", 10), ("default", "tokens_per_minute", 1000)
    )
    refused = await meter.admit("c1", tokens_only, False, 900, now)
    assert refused.refused_by == QuotaLimit("default", "tokens_per_minute", 1000)
    report = await meter.usage("c1", tokens_only)
    assert used(report, "default", "requests_per_minute") == 2
    assert used(report, "default", "tokens_per_minute") == 200


async def test_the_longest_wait_is_reported(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    p = plan(("default", "requests_per_minute", 1), ("default", "requests_per_day", 1))
    meter = make_meter()
    assert (await meter.admit("c1", p, False, 0, at(clock.now))).allowed
    refused = await meter.admit("c1", p, False, 0, at(clock.now + 1))
    assert refused.refused_by == QuotaLimit("default", "requests_per_day", 1)
    assert refused.retry_after_seconds == 86_399


async def test_headers_name_the_tightest_bucket(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    p = plan(
        ("default", "requests_per_minute", 10),
        ("agentic", "requests_per_minute", 3),
        ("default", "tokens_per_day", 10_000),
        ("default", "tokens_per_minute", 1_000),
    )
    meter = make_meter()
    admission = await meter.admit("c1", p, False, 100, at(clock.now))
    assert admission.headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    assert admission.reserved_tokens == 100
    summary = json.loads(json.dumps(admission.summary))
    assert summary["reserved_tokens"] == 100
    assert summary["refused_by"] is None
    assert {(b["capability"], b["kind"], b["remaining"]) for b in summary["buckets"]} == {
        ("default", "requests_per_minute", 9),
        ("agentic", "requests_per_minute", 2),
        ("default", "tokens_per_day", 9_900),
        ("default", "tokens_per_minute", 900),
    }


async def test_refusal_message_and_summary(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    p = plan(("agentic", "requests_per_minute", 1))
    meter = make_meter()
    await meter.admit("c1", p, False, 0, at(clock.now))
    refused = await meter.admit("c1", p, False, 0, at(clock.now + 30))
    assert describe_refusal(refused) == (
        "agentic requests_per_minute limit of 1 reached; retry after 30s"
    )
    record = json.loads(json.dumps(refused.summary))
    assert record["refused_by"]["kind"] == "requests_per_minute"
    assert record["refused_by"]["retry_after_ms"] == 30_000
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


async def test_duplicate_limits_in_a_plan_apply_once_with_the_lowest(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    p = plan(("default", "requests_per_minute", 3), ("default", "requests_per_minute", 2))
    meter = make_meter()
    results = [(await meter.admit("c1", p, False, 0, at(clock.now))).allowed for _ in range(3)]
    assert results == [True, True, False]


async def test_a_plan_without_limits_admits_without_the_store(clock: FakeClock) -> None:
    from gateway.quota.redis_store import RedisStore

    meter = Meter(RedisStore("redis://127.0.0.1:1/0"))  # nothing listens there
    admission = await meter.admit("c1", plan(), True, 100, at(clock.now))
    assert admission.allowed and not admission.fail_open and admission.lease is None
    assert meter.store_failures == 0
    await meter.settle(admission, None)
    await meter.aclose()


async def test_a_message_batch_takes_its_requests_at_once(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    """``requests=N`` (a Message Batch of N) counts N in request windows, all
    or nothing, and its tokens once; a single request still counts one."""
    rpm_and_tokens = plan(
        ("default", "requests_per_minute", 5), ("default", "tokens_per_minute", 1000)
    )
    meter = make_meter()
    now = at(clock.now)
    too_many = await meter.admit("c1", rpm_and_tokens, False, 60, now, requests=6)
    assert not too_many.allowed
    assert too_many.refused_by == QuotaLimit("default", "requests_per_minute", 5)
    batch = await meter.admit("c1", rpm_and_tokens, False, 300, now, requests=3)
    assert batch.allowed and batch.reserved_tokens == 300
    assert batch.headers["x-ratelimit-remaining-requests"] == "2", batch.headers
    assert not (await meter.admit("c1", rpm_and_tokens, False, 0, now, requests=3)).allowed
    assert (await meter.admit("c1", rpm_and_tokens, False, 0, now)).allowed
    assert (await meter.admit("c1", rpm_and_tokens, False, 0, now)).allowed
    assert not (await meter.admit("c1", rpm_and_tokens, False, 0, now)).allowed
