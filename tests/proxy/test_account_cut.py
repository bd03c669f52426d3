"""Which account changes end a stream in flight (``gateway.proxy.cut``'s module doc).

The watch runs over the bundled policy (its frontier directive, an
``in_flight: finish`` rule, in force at ``NOW``); the account changes as the
live-streams registry hands them over.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.identity.principal import Principal
from gateway.policy.engine import decide
from gateway.policy.holder import PolicyHolder
from gateway.proxy.cut import Cut, StreamPolicyWatch
from tests.policy.conftest import MINIMAL, POLICIES, facts, principal, write_bundle

NOW = datetime(2026, 11, 1, tzinfo=UTC)
US_ENTERPRISE = {"tier": "enterprise", "kyc_level": "kyb_verified",
                 "citizenships": ["US"], "residence": "US"}  # fmt: skip
DE_ENTERPRISE = {**US_ENTERPRISE, "citizenships": ["DE"], "residence": "DE"}


@pytest.fixture(scope="module")
def holder() -> PolicyHolder:
    return PolicyHolder(POLICIES)


def _watch(holder: PolicyHolder, admitted: Principal, model: str = "fable-5") -> StreamPolicyWatch:
    return StreamPolicyWatch(holder, holder.current, admitted, facts(model), lambda: NOW)


def _after(watch: StreamPolicyWatch, news: Principal | Cut) -> Cut | None:
    assert not watch.due()
    watch.account_changed(news)
    assert watch.due()  # the relay loop's per-chunk test sees the flag
    cut = watch.check()
    assert not watch.due()
    return cut


def test_a_suspension_ends_the_stream(holder: PolicyHolder) -> None:
    admitted = principal(**US_ENTERPRISE)
    cut = _after(_watch(holder, admitted), replace(admitted, status="suspended"))
    assert cut == Cut("customer-suspended", "This account is suspended.", "account", 403)
    assert cut.outcome_error == "account_cut:customer-suspended"


def test_a_confirmed_sanctions_match_ends_the_stream(holder: PolicyHolder) -> None:
    admitted = principal(**US_ENTERPRISE)
    cut = _after(_watch(holder, admitted), replace(admitted, sanctions_status="confirmed_match"))
    assert cut is not None and cut.outcome_error == "account_cut:sanctions-confirmed-match"


def test_a_kyc_downgrade_below_the_tier_ends_a_stream_the_tier_no_longer_gets(
    holder: PolicyHolder,
) -> None:
    admitted = principal(**US_ENTERPRISE)
    downgraded = replace(admitted, kyc_level="email_verified")  # public: no fable-5
    cut = _after(_watch(holder, admitted), downgraded)
    assert cut is not None and cut.outcome_error == "account_cut:default-deny", cut
    # The same downgrade on a model the public tier has: nothing to end.
    assert _after(_watch(holder, admitted, "haiku-lite"), downgraded) is None


def test_a_potential_match_ends_a_frontier_stream(holder: PolicyHolder) -> None:
    admitted = principal(**US_ENTERPRISE)
    held = replace(admitted, sanctions_status="potential_match")  # held at public
    cut = _after(_watch(holder, admitted), held)
    assert cut is not None and cut.cause == "account", cut


def test_an_unrelated_edit_does_not_cut_what_a_finish_rule_lets_finish(
    holder: PolicyHolder,
) -> None:
    # Admitted before the directive (in_flight: finish) started refusing it:
    # renaming the customer must not take away the grace the rule gives.
    admitted = principal(**DE_ENTERPRISE)
    refused = decide(admitted, facts("fable-5"), holder.current, NOW)
    assert refused.rule_ids == ("directive-frontier-us-persons-only",), refused
    watch = _watch(holder, admitted)
    assert _after(watch, replace(admitted, name="Renamed GmbH")) is None
    # A suspension still ends it, whatever else refuses it.
    cut = _after(watch, replace(admitted, status="suspended"))
    assert cut is not None and cut.outcome_error == "account_cut:customer-suspended"


def test_a_harmless_change_keeps_the_stream_and_the_credential_refusal_sticks(
    holder: PolicyHolder,
) -> None:
    admitted = principal(**US_ENTERPRISE)
    watch = _watch(holder, admitted)
    assert _after(watch, replace(admitted, name="Acme Renamed")) is None
    revoked = Cut("key-revoked", "gateway key revoked", "account", 401)
    watch.account_changed(revoked)
    watch.account_changed(admitted)  # a read that raced the revocation does not lift it
    assert watch.check() == revoked


async def test_kyc_that_expires_mid_stream_ends_a_stream_the_tier_no_longer_gets(
    holder: PolicyHolder,
) -> None:
    # No one changes the record: the expiry instant passes. As for a change
    # made by an officer, the stream ends if the expiry is what refuses it.
    now = [NOW]
    expiring = principal(**US_ENTERPRISE, kyc_expires_at=NOW + timedelta(milliseconds=50))
    frontier = StreamPolicyWatch(holder, holder.current, expiring, facts("fable-5"),
                                 lambda: now[0])  # fmt: skip
    public = StreamPolicyWatch(holder, holder.current, expiring, facts("haiku-lite"),
                               lambda: now[0])  # fmt: skip
    assert not frontier.due()
    await asyncio.sleep(0.08)
    now[0] = NOW + timedelta(milliseconds=80)
    assert frontier.due()
    cut = frontier.check()
    assert cut is not None and cut.outcome_error == "account_cut:default-deny", cut
    assert "KYC expired" in cut.message, cut.message
    assert public.due() and public.check() is None and not public.due()


async def test_kyc_that_becomes_too_old_mid_stream_ends_a_stream_the_tier_no_longer_gets(
    tmp_path: Path,
) -> None:
    # A tier that asks for re-verification every 30 days: the stream's
    # customer reaches that age mid-stream, as with an expiry.
    tiers = MINIMAL["tiers.yaml"].replace(
        "enterprise: {min_kyc: kyb_verified}",
        "enterprise: {min_kyc: kyb_verified, kyc_max_age_days: 30}",
    )
    rules = "rules:\n  - {id: entitled, effect: allow, when: {model_allowed_for_tier: true}}\n"
    holder = PolicyHolder(write_bundle(tmp_path / "b", {**MINIMAL, "tiers.yaml": tiers,
                                                        "rules.yaml": rules}))  # fmt: skip
    verified = NOW - timedelta(days=30) + timedelta(milliseconds=50)
    aging = principal(tier="enterprise", kyc_level="kyb_verified", kyc_verified_at=verified)
    now = [NOW]
    watch = StreamPolicyWatch(holder, holder.current, aging, facts("big"), lambda: now[0])
    assert not watch.due()
    await asyncio.sleep(0.08)
    now[0] = NOW + timedelta(milliseconds=80)
    assert watch.due()
    cut = watch.check()
    assert cut is not None and cut.outcome_error == "account_cut:default-deny", cut
    assert "re-verification" in cut.message, cut.message


def test_a_kyc_lapse_months_ahead_costs_a_stream_no_clock_read(holder: PolicyHolder) -> None:
    later = principal(**US_ENTERPRISE, kyc_expires_at=NOW + timedelta(days=90))
    watch = _watch(holder, later)
    assert watch._due == math.inf  # due() stays an attribute read and an identity test


def test_a_token_that_stops_verifying_ends_the_stream_whatever_the_account_reads_say(
    holder: PolicyHolder,
) -> None:
    # The customer's principal, read again after a change, carries no token:
    # the stream keeps the instant of the token it was admitted on.
    stops = NOW + timedelta(minutes=5)
    admitted = principal(**US_ENTERPRISE, auth_method="oidc", token_expires_at=stops)
    now = [NOW]
    watch = StreamPolicyWatch(holder, holder.current, admitted, facts("fable-5"),
                              lambda: now[0])  # fmt: skip
    assert watch.deadline == stops.timestamp()  # the one timer wakes it then
    assert _after(watch, replace(admitted, name="Acme Renamed", token_expires_at=None)) is None
    assert watch.deadline == stops.timestamp()
    now[0] = stops
    watch.wake()
    cut = watch.check()
    assert cut == Cut("token-expired", "OIDC token expired", "account", 401), cut
    assert cut.outcome_error == "account_cut:token-expired"
