"""Property tests: deny always wins, deny-only never allows, decisions are deterministic."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.geo.origin import Origin
from gateway.identity.principal import Ownership, Principal
from gateway.policy import schema as s
from gateway.policy.compiled import CompiledBundle, compile_bundle
from gateway.policy.engine import decide
from gateway.policy.facts import BodyFacts, RequestFacts
from gateway.policy.loader import bundle_version

COUNTRIES = ["US", "CN", "DE", "IR", "GB", "RU", "UA"]
MODELS = ["small", "big"]
TIERS = ["public", "enterprise"]
CAPS = ["agentic", "coding"]
LEVELS = ["none", "kyb_verified"]

leaf_conditions = st.one_of(
    st.builds(lambda v: {"citizenship_in": v}, st.lists(st.sampled_from(COUNTRIES), min_size=1)),
    st.builds(lambda v: {"residence_in": v}, st.lists(st.sampled_from(COUNTRIES), min_size=1)),
    st.builds(
        lambda v: {"origin_in": v}, st.lists(st.sampled_from([*COUNTRIES, "UA-43"]), min_size=1)
    ),
    st.builds(lambda v: {"controlled_by_in": v}, st.lists(st.sampled_from(COUNTRIES), min_size=1)),
    st.builds(lambda v: {"origin_unknown": v}, st.booleans()),
    st.builds(lambda v: {"us_person": v}, st.booleans()),
    st.builds(lambda v: {"kyc_at_least": v}, st.sampled_from(LEVELS)),
    st.builds(lambda v: {"tier_in": v}, st.lists(st.sampled_from(TIERS), min_size=1)),
    st.builds(lambda v: {"model_in": v}, st.lists(st.sampled_from(MODELS), min_size=1)),
    st.builds(lambda v: {"capability_in": v}, st.lists(st.sampled_from(CAPS), min_size=1)),
    st.builds(lambda v: {"model_allowed_for_tier": v}, st.booleans()),
    st.builds(lambda v: {"has_tools": v}, st.booleans()),
    st.builds(lambda v: {"max_tokens_over": v}, st.integers(0, 100)),
    st.just({}),
)
conditions = st.recursive(
    leaf_conditions,
    lambda inner: st.one_of(
        st.builds(lambda v: {"any": v}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda v: {"all": v}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda v: {"not": v}, inner),
        st.builds(lambda a, b: {**a, **b}, inner, inner),
    ),
    max_leaves=6,
)
rules = st.lists(
    st.tuples(st.sampled_from(["allow", "deny"]), conditions, st.one_of(st.none(), conditions)),
    min_size=1,
    max_size=6,
)
# Owners with owners of their own (chains): the rule index must find a
# controlled_by_in rule whichever level the controlling country sits at.
owners = st.recursive(
    st.builds(Ownership, st.sampled_from(COUNTRIES), st.floats(0, 100)),
    lambda inner: st.builds(
        lambda c, p, subs: Ownership(c, p, "Parent Co", tuple(subs)),
        st.sampled_from(COUNTRIES),
        st.floats(0, 100),
        st.lists(inner, min_size=1, max_size=2),
    ),
    max_leaves=5,
)
principals = st.builds(
    lambda tier, level, cits, res, owners: Principal(
        customer_id="c",
        tier=tier,
        kyc_level=level,
        citizenships=frozenset(cits),
        residence=res,
        ownership=tuple(owners),
    ),
    st.sampled_from(TIERS),
    st.sampled_from(LEVELS),
    st.sets(st.sampled_from(COUNTRIES), max_size=2),
    st.one_of(st.none(), st.sampled_from([*COUNTRIES, "UA-43"])),
    st.lists(owners, max_size=3),
)
requests = st.builds(
    lambda model, country, caps, tools, mt: RequestFacts(
        endpoint="/v1/chat/completions",
        api="openai",
        body=BodyFacts(model=model, has_tools=tools, max_tokens=mt),
        origin=Origin("203.0.113.1", country, "UA-43" if country == "UA" else None),
        capabilities=frozenset(caps),
    ),
    st.sampled_from(MODELS),
    st.one_of(st.none(), st.sampled_from(COUNTRIES)),
    st.sets(st.sampled_from(CAPS)),
    st.booleans(),
    st.one_of(st.none(), st.integers(0, 200)),
)
NOW = datetime(2026, 6, 14, tzinfo=UTC)


def build(
    rule_specs: list[tuple[str, dict[str, object], dict[str, object] | None]],
) -> CompiledBundle:
    raw = {
        "kyc_levels": LEVELS,
        "tiers": {"public": {"min_kyc": "none"}, "enterprise": {"min_kyc": "kyb_verified"}},
        "models": {"small": {"tiers": TIERS}, "big": {"tiers": ["enterprise"]}},
        "capabilities": {
            "agentic": {"when": {"has_tools": True}},
            "coding": {"when": {"prompt_matches": "def "}},
        },
        "rules": [
            {
                "id": f"r{i}",
                "effect": eff,
                "when": when,
                **({"unless": unless} if unless is not None else {}),
            }
            for i, (eff, when, unless) in enumerate(rule_specs)
        ],
    }
    bundle = s.Bundle.model_validate(raw)
    return compile_bundle(bundle, bundle_version(bundle))


def matches(bundle: CompiledBundle, rule_id: str, p: Principal, f: RequestFacts) -> bool:
    from gateway.policy.account_tier import effective_tier
    from gateway.policy.conditions import EvalContext

    rule = next(r for r in bundle.rules if r.id == rule_id)
    tier, _ = effective_tier(p, bundle, NOW)
    model = bundle.models.get(f.body.model)
    ctx = EvalContext(
        p,
        f,
        tier,
        NOW,
        bundle.kyc_rank.get(p.kyc_level, -1),
        model.tiers if model else frozenset(),
        bundle.control_threshold_percent,
    )
    return rule.predicate(ctx)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules, principals, requests)
def test_never_allows_when_a_deny_rule_matches(specs, p, f) -> None:  # type: ignore[no-untyped-def]
    bundle = build(specs)
    decision = decide(p, f, bundle, NOW)
    matching_denies = [
        r.id for r in bundle.rules if r.effect == "deny" and matches(bundle, r.id, p, f)
    ]
    if matching_denies:
        assert not decision.allowed
        assert list(decision.rule_ids) == matching_denies
    else:
        matching_allows = [
            r.id for r in bundle.rules if r.effect == "allow" and matches(bundle, r.id, p, f)
        ]
        assert decision.allowed is bool(matching_allows)
        assert list(decision.rule_ids) == (matching_allows or ["default-deny"])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.just("deny"), conditions, st.one_of(st.none(), conditions)), max_size=6),
    principals,
    requests,
)
def test_deny_only_bundle_never_allows(specs, p, f) -> None:  # type: ignore[no-untyped-def]
    bundle = build(specs) if specs else build([("deny", {"model_in": ["big"]}, None)])
    assert not decide(p, f, bundle, NOW).allowed


@settings(max_examples=100, deadline=None)
@given(rules, principals, requests)
def test_decisions_are_deterministic(specs, p, f) -> None:  # type: ignore[no-untyped-def]
    first, second = build(specs), build(specs)
    assert first.version == second.version
    assert decide(p, f, first, NOW) == decide(p, f, first, NOW) == decide(p, f, second, NOW)
