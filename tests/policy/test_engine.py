"""Engine unit tests: Cedar semantics, effective tier, windows, quotas, fail-closed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from gateway.geo.origin import Origin
from gateway.identity.principal import Ownership
from gateway.policy.account_tier import effective_tier
from gateway.policy.capabilities import classify
from gateway.policy.compiled import CompiledBundle
from gateway.policy.decision import QuotaLimit
from gateway.policy.engine import decide, visible_models
from gateway.policy.facts import BodyFacts
from gateway.policy.replay import from_replay, replay_facts
from tests.policy.conftest import AFTER_DIRECTIVE, BEFORE_DIRECTIVE, facts, principal

Build = Callable[..., CompiledBundle]
US_GOV = dict(
    tier="government", kyc_level="government_cleared", citizenships={"US"}, residence="US"
)
DE_ENT = dict(tier="enterprise", kyc_level="kyb_verified", citizenships={"DE"}, residence="DE")


def test_all_matching_denies_are_reported_in_declaration_order(
    default_bundle: CompiledBundle,
) -> None:
    p = principal(tier="public", citizenships={"IR"}, residence="IR")
    d = decide(p, facts(country="IR"), default_bundle, AFTER_DIRECTIVE)
    assert not d.allowed
    assert d.rule_ids == ("sanctioned-origin", "sanctioned-residence")
    assert len(d.reasons) == 2 and d.policy_version == default_bundle.version
    assert d.quota is None and d.deny_status == 403


def test_allow_carries_rule_ids_and_quota_plan(default_bundle: CompiledBundle) -> None:
    d = decide(principal(**DE_ENT), facts(country="DE"), default_bundle, AFTER_DIRECTIVE)
    assert d.allowed and d.rule_ids == ("tier-entitlement",) and d.effective_tier == "enterprise"
    assert d.quota is not None and d.quota.tier == "enterprise"
    assert d.quota.limits == (
        QuotaLimit("default", "requests_per_minute", 600),
        QuotaLimit("default", "tokens_per_minute", 400000),
    )
    assert d.quota.default_max_tokens == 4096 and d.quota.fail_open is False


def test_quota_plan_uses_capability_entries_instead_of_default(
    default_bundle: CompiledBundle,
) -> None:
    d = decide(
        principal(**DE_ENT),
        facts(country="DE", caps=frozenset({"agentic", "cyber", "coding"})),
        default_bundle,
        AFTER_DIRECTIVE,
    )
    assert d.allowed and d.quota is not None
    assert {lim.capability for lim in d.quota.limits} == {"agentic", "cyber"}
    assert QuotaLimit("agentic", "concurrent_streams", 20) in d.quota.limits
    # coding has no entry of its own and default is not added when another capability has one
    d2 = decide(
        principal(**DE_ENT),
        facts(country="DE", caps=frozenset({"coding"})),
        default_bundle,
        AFTER_DIRECTIVE,
    )
    assert d2.quota is not None and {lim.capability for lim in d2.quota.limits} == {"default"}


def test_zero_limit_is_not_offered_403(default_bundle: CompiledBundle) -> None:
    d = decide(
        principal(tier="public"),
        facts(caps=frozenset({"agentic"})),
        default_bundle,
        AFTER_DIRECTIVE,
    )
    assert not d.allowed and d.deny_status == 403
    assert d.rule_ids == ("quota-not-offered:public.agentic",)


def test_zero_concurrent_streams_closes_the_bucket_to_streams_only(make_bundle: Build) -> None:
    # `concurrent_streams: 0` means "no streams here"; a non-streaming request
    # holds no stream slot and was refused as if the capability were closed.
    bundle = make_bundle(
        "rules:\n  - {id: allow-all, effect: allow, when: {}}\n",
        "quotas:\n  public:\n    default: {requests_per_minute: 5, concurrent_streams: 0}\n",
    )
    plain = decide(principal(tier="public"), facts(), bundle, AFTER_DIRECTIVE)
    assert plain.allowed and plain.quota is not None
    streamed = decide(principal(tier="public"), facts(stream=True), bundle, AFTER_DIRECTIVE)
    assert not streamed.allowed
    assert streamed.rule_ids == ("quota-not-offered:public.default",)


def test_default_deny(make_bundle: Build) -> None:
    bundle = make_bundle("rules: []\n")
    d = decide(principal(), facts(model="small"), bundle, AFTER_DIRECTIVE)
    assert not d.allowed and d.rule_ids == ("default-deny",)


def test_effective_window_is_half_open(make_bundle: Build) -> None:
    bundle = make_bundle("""\
rules:
  - id: allow-all
    effect: allow
    when: {}
  - id: window
    effect: deny
    when: {model_in: small}
    effective: {from: "2026-06-01T00:00:00Z", until: "2026-06-02T00:00:00Z"}
""")
    start = datetime(2026, 6, 1, tzinfo=UTC)
    cases = [
        (start - timedelta(seconds=1), True),
        (start, False),
        (start + timedelta(days=1) - timedelta(microseconds=1), False),
        (start + timedelta(days=1), True),
    ]
    for now, allowed in cases:
        assert decide(principal(), facts(model="small"), bundle, now).allowed is allowed, now


def test_unless_exempts(default_bundle: CompiledBundle) -> None:
    f = facts(model="fable-5", country="DE")
    assert not decide(principal(**DE_ENT), f, default_bundle, AFTER_DIRECTIVE).allowed
    assert decide(principal(**DE_ENT), f, default_bundle, BEFORE_DIRECTIVE).allowed
    lpr = principal(**{**DE_ENT, "attributes": {"us_protected_individual"}})
    assert decide(lpr, f, default_bundle, AFTER_DIRECTIVE).allowed


@pytest.mark.parametrize(
    ("shares", "controlled"),
    [
        ([("CN", 50.0)], True),
        ([("CN", 49.0)], False),
        ([("CN", 49.99)], False),
        # OFAC's 50% rule aggregates across the whole set: 30% CN + 25% HK is control.
        ([("CN", 30.0), ("HK", 25.0)], True),
        ([("CN", 30.0), ("HK", 19.0), ("DE", 51.0)], False),
        ([("CN", 30.0), ("DE", 25.0), ("FR", 45.0)], False),  # only the set's shares count
        ([("RU", 10.0), ("IR", 10.0), ("KP", 10.0), ("CU", 10.0), ("VE", 10.0)], True),
        ([("CN", 33.3), ("HK", 16.7)], True),  # float sums that are 50 in decimal
        ([("RU", 20.0), ("RU", 30.0)], True),
    ],
)
def test_control_threshold(
    default_bundle: CompiledBundle, shares: list[tuple[str, float]], controlled: bool
) -> None:
    p = principal(
        kind="organization",
        tier="enterprise",
        kyc_level="kyb_verified",
        ownership=tuple(Ownership(c, pct) for c, pct in shares),
    )
    d = decide(p, facts(), default_bundle, AFTER_DIRECTIVE)
    assert (d.rule_ids == ("controlled-by-country-of-concern",)) is controlled


def test_effective_tier_reasons(default_bundle: CompiledBundle) -> None:
    now = AFTER_DIRECTIVE
    assert effective_tier(principal(**US_GOV), default_bundle, now) == ("government", None)
    expired = principal(**US_GOV, kyc_expires_at=now)
    tier, why = effective_tier(expired, default_bundle, now)
    assert tier == "public" and why is not None and "expired" in why
    naive_future = principal(**US_GOV, kyc_expires_at=datetime(2030, 1, 1))
    assert effective_tier(naive_future, default_bundle, now)[0] == "government"
    low = principal(**{**US_GOV, "kyc_level": "id_verified"})
    assert "below" in (effective_tier(low, default_bundle, now)[1] or "")
    unknown = principal(tier="platinum")
    assert effective_tier(unknown, default_bundle, now)[0] == "public"
    match = principal(**US_GOV, sanctions_status="potential_match")
    assert effective_tier(match, default_bundle, now) == (
        "public",
        "sanctions screening status is potential_match",
    )
    defense_gb = principal(tier="defense", kyc_level="government_cleared", citizenships={"GB"})
    assert "requires citizenship" in (effective_tier(defense_gb, default_bundle, now)[1] or "")


def test_demotion_is_reported_on_the_decision(default_bundle: CompiledBundle) -> None:
    p = principal(**US_GOV, kyc_expires_at=AFTER_DIRECTIVE - timedelta(days=1))
    d = decide(p, facts(), default_bundle, AFTER_DIRECTIVE)
    assert d.allowed and d.effective_tier == "public" and d.tier_demotion is not None
    assert d.quota is not None and d.quota.tier == "public"


def test_suspended_and_confirmed_match(default_bundle: CompiledBundle) -> None:
    d = decide(principal(**US_GOV, status="suspended"), facts(), default_bundle, AFTER_DIRECTIVE)
    assert d.rule_ids == ("customer-suspended",) and not d.allowed
    d = decide(
        principal(**US_GOV, sanctions_status="confirmed_match"),
        facts(),
        default_bundle,
        AFTER_DIRECTIVE,
    )
    assert d.rule_ids == ("sanctions-confirmed-match",) and not d.allowed


def test_evaluation_error_fails_closed(
    default_bundle: CompiledBundle, caplog: pytest.LogCaptureFixture
) -> None:
    # A tz-aware expiry against a naive clock makes the comparison raise.
    p = principal(**US_GOV, kyc_expires_at=datetime(2030, 1, 1, tzinfo=UTC))
    with caplog.at_level(logging.ERROR, logger="gateway.policy"):
        d = decide(p, facts(), default_bundle, datetime(2026, 6, 14))
    assert not d.allowed and d.rule_ids == ("evaluation-error",)
    assert any(r.name == "gateway.policy" and r.exc_info for r in caplog.records)


def test_regions_and_unknown_origin(make_bundle: Build) -> None:
    bundle = make_bundle("""\
rules:
  - {id: all, effect: allow, when: {}}
  - {id: crimea, effect: deny, when: {origin_in: [UA-43]}}
  - {id: unknown, effect: deny, when: {origin_unknown: true, model_in: big}}
""")
    now = AFTER_DIRECTIVE
    assert decide(principal(), facts("small", "UA", "UA-43"), bundle, now).rule_ids == ("crimea",)
    assert decide(principal(), facts("small", "UA", "UA-30"), bundle, now).allowed
    assert decide(principal(), facts("small", "UA"), bundle, now).allowed  # no region known
    assert decide(principal(), facts("big", None), bundle, now).rule_ids == ("unknown",)
    assert decide(principal(), facts("small", None), bundle, now).allowed


def test_full_condition_vocabulary(make_bundle: Build) -> None:
    bundle = make_bundle("""\
rules:
  - {id: all, effect: allow, when: {}}
  - id: combo
    effect: deny
    when:
      all:
        - {citizenship_in: [FR], residence_in: [FR], incorporated_in: [FR]}
        - {kyc_at_least: kyb_verified, kyc_expired: false, tier_in: [enterprise]}
        - {has_attribute: [a, b], customer_in: [c1], sanctions_status_in: clear}
        - {endpoint_in: [/v1/messages], capability_in: [agentic], us_person: false}
        - any: [{has_tools: true}, {max_tokens_over: 10}]
        - {messages_over: 2, prompt_matches: ['(?i)secret', 'x{3}']}
        - not: {model_allowed_for_tier: false}
""")
    p = principal(
        tier="enterprise",
        kyc_level="kyb_verified",
        citizenships={"FR"},
        residence="FR",
        incorporated_in="FR",
        attributes={"a", "b"},
    )
    f = facts(
        "big",
        "FR",
        endpoint="/v1/messages",
        caps=frozenset({"agentic"}),
        has_tools=True,
        message_count=3,
        prompt_text="a SECRET plan",
    )
    assert decide(p, f, bundle, AFTER_DIRECTIVE).rule_ids == ("combo",)
    # Flip one fact at a time: each must break the deny.
    variants = [
        facts(
            "big",
            "FR",
            endpoint="/v1/chat/completions",
            caps=frozenset({"agentic"}),
            has_tools=True,
            message_count=3,
            prompt_text="secret",
        ),
        facts(
            "big",
            "FR",
            endpoint="/v1/messages",
            caps=frozenset({"agentic"}),
            has_tools=True,
            message_count=2,
            prompt_text="secret",
        ),
        facts(
            "big",
            "FR",
            endpoint="/v1/messages",
            caps=frozenset({"agentic"}),
            has_tools=True,
            message_count=3,
            prompt_text="nothing here",
        ),
        facts(
            "big",
            "FR",
            endpoint="/v1/messages",
            caps=frozenset(),
            has_tools=True,
            message_count=3,
            prompt_text="xxx",
        ),
    ]
    for v in variants:
        assert decide(p, v, bundle, AFTER_DIRECTIVE).rule_ids == ("all",)
    us_too = principal(
        tier="enterprise",
        kyc_level="kyb_verified",
        citizenships={"FR", "US"},
        residence="FR",
        incorporated_in="FR",
        attributes={"a", "b"},
    )
    assert decide(us_too, f, bundle, AFTER_DIRECTIVE).allowed  # us_person: false no longer holds


def test_rules_are_indexed_by_model(default_bundle: CompiledBundle) -> None:
    haiku = default_bundle.rules_for("haiku-lite")
    fable = default_bundle.rules_for("fable-5")
    assert "directive-frontier-us-persons-only" not in {r.id for r in haiku.denies.all_rules()}
    assert "directive-frontier-us-persons-only" in {r.id for r in fable.denies.all_rules()}
    assert "frontier-arms-embargoed-origin" not in {r.id for r in fable.denies.all_rules()}
    # rules with a top-level origin/residence set are bucketed by country
    origin_bucket = haiku.denies.buckets["origin"]
    assert [r.id for r in origin_bucket["UA-43"]] == ["sanctioned-origin"]
    assert "US" not in origin_bucket
    assert default_bundle.upstream_for("mythos-5") == "https://mythos.internal.example"
    assert default_bundle.upstream_for("haiku-lite") is None
    assert default_bundle.upstream_for("nope") is None


def test_visible_models(default_bundle: CompiledBundle) -> None:
    us = Origin("203.0.113.9", "US")
    assert visible_models(principal(**US_GOV), default_bundle, AFTER_DIRECTIVE, us) == [
        "haiku-lite",
        "fable-5",
        "mythos-5",
    ]
    assert visible_models(principal(**DE_ENT), default_bundle, AFTER_DIRECTIVE, us) == [
        "haiku-lite"
    ]
    assert visible_models(principal(**DE_ENT), default_bundle, BEFORE_DIRECTIVE, us) == [
        "haiku-lite",
        "fable-5",
    ]
    assert (
        visible_models(
            principal(**US_GOV), default_bundle, AFTER_DIRECTIVE, Origin("1.2.3.4", "CU")
        )
        == []
    )


def test_classify(default_bundle: CompiledBundle) -> None:
    def caps(**kw: object) -> frozenset[str]:
        return classify(BodyFacts(model="haiku-lite", **kw), default_bundle)  # type: ignore[arg-type]

    assert caps() == frozenset()
    assert caps(has_tools=True) == {"agentic"}
    assert caps(prompt_text="```python\nprint(1)```") == {"coding"}
    assert caps(prompt_text="An EXPLOIT for CVE-2021-44228") == {"cyber"}
    assert caps(prompt_text="#include <stdio.h> shellcode") == {"coding", "cyber"}
    assert caps(max_tokens=16001) == {"long_horizon"}
    assert caps(max_tokens=16000, message_count=40) == frozenset()
    assert caps(message_count=41) == {"long_horizon"}
    assert caps(prompt_text="exploitation of labour") == frozenset()  # \b in (?i)\bexploit\b
    # Python as it is written: any whitespace after def and before the parenthesis.
    for code in ("def  run(x):", "def\trun(x):", "def run (x):", "async def run(x):"):
        assert caps(prompt_text=code) == {"coding"}, code
    assert caps(prompt_text="the def of it (really)") == frozenset()
    assert caps(logprobs=True) == caps(reasoning=True) == {"traces"}


def test_replay_round_trip(default_bundle: CompiledBundle) -> None:
    p = principal(
        **US_GOV,
        ownership=(Ownership("US", 100.0),),
        kyc_expires_at=AFTER_DIRECTIVE,
        attributes={"x"},
        key_id="k1",
    )
    f = facts(
        "mythos-5",
        "UA",
        "UA-43",
        caps=frozenset({"coding"}),
        prompt_text="secret prompt",
        prompt_sha256="ab" * 32,
        max_tokens=5,
        message_count=2,
        has_tools=True,
    )
    stored = replay_facts(p, f)
    assert "secret prompt" not in str(stored)
    import json

    p2, f2 = from_replay(json.loads(json.dumps(stored)))
    assert p2 == p
    assert f2.origin == f.origin and f2.capabilities == f.capabilities
    assert f2.body.prompt_text == "" and f2.body.prompt_sha256 == f.body.prompt_sha256
    assert decide(p2, f2, default_bundle, AFTER_DIRECTIVE) == decide(
        p, f, default_bundle, AFTER_DIRECTIVE
    )


REVERIFY_TIERS = """\
kyc_levels: [none, kyb_verified]
tiers:
  public: {min_kyc: none}
  enterprise: {min_kyc: kyb_verified, kyc_max_age_days: 365}
"""


def test_a_tier_can_require_periodic_reverification(make_bundle: Build) -> None:
    """``kyc_max_age_days``: KYC verified longer ago than that, or at a time
    nobody recorded, is served as public, and the record says why (research
    §3: re-verification per tier). Tiers without it never look at the time."""
    rules = "rules:\n  - {id: entitled, effect: allow, when: {model_allowed_for_tier: true}}\n"
    bundle = make_bundle(rules, extra={"tiers.yaml": REVERIFY_TIERS})
    now = datetime(2027, 6, 1, tzinfo=UTC)
    fresh = principal(tier="enterprise", kyc_level="kyb_verified",
                      kyc_verified_at=now - timedelta(days=364))
    assert effective_tier(fresh, bundle, now) == ("enterprise", None)
    stale = principal(tier="enterprise", kyc_level="kyb_verified",
                      kyc_verified_at=now - timedelta(days=365))
    tier, why = effective_tier(stale, bundle, now)
    assert tier == "public" and why == (
        "KYC verified at 2026-06-01T00:00:00Z; tier enterprise requires re-verification "
        "every 365 days")
    decision = decide(stale, facts(model="big"), bundle, now)
    assert not decision.allowed and decision.tier_demotion == why
    unknown = principal(tier="enterprise", kyc_level="kyb_verified")
    assert effective_tier(unknown, bundle, now) == (
        "public", "KYC verified at an unrecorded time; tier enterprise requires "
                  "re-verification every 365 days")
    # Replayed from a decision record, the verification time comes back with it.
    assert effective_tier(from_replay(replay_facts(fresh, facts(model="big")))[0], bundle,
                          now) == ("enterprise", None)
    plain = make_bundle(rules)
    assert effective_tier(unknown, plain, now) == ("enterprise", None)
    assert plain.version == make_bundle(rules).version


def test_a_key_scope_narrows_after_the_rules_and_replays(default_bundle: CompiledBundle) -> None:
    """A scoped key is refused what its scope leaves out (rule id key-scope);
    a bundle deny still names its own rule (the scope never hides why a
    sanctioned request was refused); and the scope is part of the replay facts,
    so `policy impact` does not count a key-scope refusal as a change."""
    scoped = principal(**US_GOV, key_models=frozenset({"haiku-lite"}),
                       key_capabilities=frozenset({"coding"}))  # fmt: skip
    assert decide(scoped, facts(country="US"), default_bundle, AFTER_DIRECTIVE).allowed
    coding = facts(country="US", caps=frozenset({"coding"}))
    assert decide(scoped, coding, default_bundle, AFTER_DIRECTIVE).allowed
    for refused in (facts(model="fable-5", country="US"),
                    facts(country="US", caps=frozenset({"coding", "agentic"}))):  # fmt: skip
        d = decide(scoped, refused, default_bundle, AFTER_DIRECTIVE)
        assert not d.allowed and d.rule_ids == ("key-scope",) and d.deny_status == 403, d
        p2, f2 = from_replay(replay_facts(scoped, refused))
        assert p2 == scoped
        assert decide(p2, f2, default_bundle, AFTER_DIRECTIVE).rule_ids == ("key-scope",)
    from_iran = decide(scoped, facts(model="fable-5", country="IR"), default_bundle,
                       AFTER_DIRECTIVE)  # fmt: skip
    assert "sanctioned-origin" in from_iran.rule_ids and "key-scope" not in from_iran.rule_ids
    # An unscoped key's replay facts are as before (no new keys in every record).
    assert "key_models" not in replay_facts(principal(**US_GOV), coding)["principal"]
    names = visible_models(scoped, default_bundle, AFTER_DIRECTIVE, Origin("203.0.113.9", "US"))
    assert names == ["haiku-lite"]
