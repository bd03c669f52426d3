"""Token reservation and settlement, and races for the last tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.policy.decision import QuotaLimit
from gateway.quota import describe_refusal
from gateway.quota.meter import Meter
from gateway.stages import Usage
from tests.quota.conftest import FakeClock
from tests.quota.helpers import at, plan, used

TPM = plan(("default", "tokens_per_minute", 1000))


async def test_settle_lower_releases_the_difference(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter()
    admission = await meter.admit("c1", TPM, False, 600, at(clock.now))
    assert admission.reserved_tokens == 600
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 600
    await meter.settle(admission, Usage(tokens_in=40, tokens_out=60))
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 100
    # Idempotent: a second settle (pipeline finally) changes nothing.
    await meter.settle(admission, None)
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 100


async def test_settle_none_releases_everything(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter()
    admission = await meter.admit("c1", TPM, False, 600, at(clock.now))
    await meter.settle(admission, None)
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 0
    unknown = await meter.admit("c1", TPM, False, 600, at(clock.now))
    await meter.settle(unknown, Usage())  # upstream reported no usage at all
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 0


async def test_settle_higher_charges_the_extra_at_settle_time(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter()
    t0 = clock.now
    admission = await meter.admit("c1", TPM, False, 600, at(t0))
    clock.advance(30)
    await meter.settle(admission, Usage(tokens_in=500, tokens_out=300))
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 800
    # The reserved part is dated at admission, the extra at settlement.
    clock.advance(31)  # t0 + 61
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 200
    clock.advance(30)  # t0 + 91
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 0


async def test_overdraft_blocks_until_the_window_drains(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter()
    t0 = clock.now
    admission = await meter.admit("c1", TPM, False, 100, at(t0))
    await meter.settle(admission, Usage(tokens_in=100, tokens_out=1400))  # 1500 > 1000
    refused = await meter.admit("c1", TPM, False, 1, at(t0 + 1))
    assert not refused.allowed
    assert refused.retry_after_seconds == 59  # the extra entry is dated t0
    assert (await meter.admit("c1", TPM, False, 1, at(t0 + 60))).allowed


async def test_retry_after_waits_for_enough_tokens_to_leave(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter()
    t0 = clock.now
    assert (await meter.admit("c1", TPM, False, 600, at(t0))).allowed
    assert (await meter.admit("c1", TPM, False, 300, at(t0 + 10))).allowed
    refused = await meter.admit("c1", TPM, False, 500, at(t0 + 20))
    # 900 used + 500 wanted - 1000 = 400 must leave: the t0 entry (600) at t0 + 60.
    assert refused.retry_after_seconds == 40
    assert describe_refusal(refused) == (
        "default tokens_per_minute limit of 1000 reached (this request reserves 500 tokens); "
        "retry after 40s"
    )
    assert (await meter.admit("c1", TPM, False, 100, at(t0 + 20))).allowed  # 100 still fits


async def test_a_request_larger_than_the_limit_is_told_so(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter()
    refused = await meter.admit("c1", TPM, False, 5000, at(clock.now))
    assert refused.refused_by == QuotaLimit("default", "tokens_per_minute", 1000)
    assert refused.summary["refused_by"]["exceeds_limit"] is True  # type: ignore[index]
    assert "needs 5000 tokens" in describe_refusal(refused)
    assert refused.retry_after_seconds == 60


async def test_twenty_concurrent_requests_never_exceed_the_limit(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    # Four "replicas" (separate connection pools in Redis) race for 1000 tokens.
    meters = [make_meter() for _ in range(4)]
    now = at(clock.now)
    results = await asyncio.gather(
        *(meters[i % 4].admit("c1", TPM, False, 60, now) for i in range(20))
    )
    granted = [a for a in results if a.allowed]
    assert len(granted) == 16  # 16 * 60 = 960; a 17th would make 1020
    assert sum(a.reserved_tokens for a in granted) <= 1000
    assert used(await meters[0].usage("c1", TPM), "default", "tokens_per_minute") == 960


async def test_the_pipelines_total_is_reserved_in_every_token_bucket(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    p = plan(
        ("default", "tokens_per_minute", 1000),
        ("default", "tokens_per_day", 5000),
        ("coding", "tokens_per_day", 700),
    )
    meter = make_meter()
    admission = await meter.admit("c1", p, False, 650, at(clock.now))
    report = await meter.usage("c1", p)
    assert [
        used(report, c, k)
        for c, k in [
            ("default", "tokens_per_minute"),
            ("default", "tokens_per_day"),
            ("coding", "tokens_per_day"),
        ]
    ] == [650, 650, 650]
    await meter.settle(admission, Usage(tokens_in=10, tokens_out=20))
    report = await meter.usage("c1", p)
    assert used(report, "coding", "tokens_per_day") == 30
    assert used(report, "default", "tokens_per_day") == 30


async def test_huge_amounts_are_clamped_not_corrupted(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    big = plan(("default", "tokens_per_day", 5 * 10**11))
    meter = make_meter()
    refused = await meter.admit("c1", big, False, 10**15, at(clock.now))
    assert not refused.allowed and refused.summary["refused_by"]["cost"] == 10**12  # type: ignore[index]
    admission = await meter.admit("c1", big, False, 4 * 10**11, at(clock.now))
    assert admission.allowed
    await meter.settle(admission, Usage(tokens_in=10**15))
    assert used(await meter.usage("c1", big), "default", "tokens_per_day") == 10**12


async def test_a_late_charge_adds_tokens_now_without_an_admission(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    """``charge`` (a Message Batch's results that used more than it reserved):
    the tokens go into every token window at the charge's time, past the
    limit if they must, and later requests wait for them to leave."""
    meter = make_meter()
    admission = await meter.admit("c1", TPM, False, 600, at(clock.now))
    await meter.settle(admission, Usage(0, 600))  # the batch's reservation, kept
    clock.advance(30)
    await meter.charge("c1", TPM, 700)
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 1300
    assert not (await meter.admit("c1", TPM, False, 1, at(clock.now))).allowed
    clock.advance(31)  # the reservation has left the window, the charge has not
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 700
    await meter.charge("c1", TPM, 0)  # nothing to charge: nothing changes
    assert used(await meter.usage("c1", TPM), "default", "tokens_per_minute") == 700
