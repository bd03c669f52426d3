"""Property: for any bundle and request, explain's verdict is decide's, its trace
reaches the same deciding rules on its own, and each rule's conditions, each
evaluated alone, combine to the rule's compiled predicate."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.identity.principal import Principal
from gateway.policy import schema as s
from gateway.policy.compiled import CompiledBundle, compile_bundle
from gateway.policy.engine import decide
from gateway.policy.explain import explain
from gateway.policy.facts import RequestFacts
from gateway.policy.loader import bundle_version
from tests.policy.test_properties import (
    LEVELS,
    NOW,
    TIERS,
    conditions,
    principals,
    requests,
)

WINDOWS = [None, {"from": "2026-06-01T00:00:00Z"}, {"from": "2026-07-01T00:00:00Z"},
           {"until": "2026-06-10T00:00:00Z"}]  # fmt: skip
# Half the rules match everything: exemptions must often find a deny to lift.
likely = st.one_of(st.just({}), conditions)
rule_specs = st.lists(
    st.tuples(
        st.sampled_from(["allow", "deny", "exempt"]),
        likely,
        st.one_of(st.none(), conditions),
        st.sampled_from(WINDOWS),
        st.sampled_from(["enforce", "enforce", "report"]),
    ),
    min_size=1,
    max_size=7,
)


def build(specs: list[tuple[str, dict[str, object], object, object, str]]) -> CompiledBundle:
    denies = [f"r{i}" for i, spec in enumerate(specs) if spec[0] == "deny"]
    rules = []
    for i, (effect, when, unless, window, mode) in enumerate(specs):
        if effect == "exempt" and not denies:
            effect = "allow"
        rule: dict[str, object] = {"id": f"r{i}", "effect": effect, "when": when, "mode": mode}
        if effect == "exempt":
            rule["exempts"] = denies[: 1 + i % len(denies)]
        if unless is not None:
            rule["unless"] = unless
        if window is not None:
            rule["effective"] = window
        rules.append(rule)
    raw = {
        "kyc_levels": LEVELS,
        "tiers": {"public": {"min_kyc": "none"}, "enterprise": {"min_kyc": "kyb_verified"}},
        "models": {"small": {"tiers": TIERS}, "big": {"tiers": ["enterprise"]}},
        "capabilities": {"agentic": {"when": {"has_tools": True}}},
        "quotas": {"public": {"agentic": {"requests_per_minute": 0}}},
        "rules": rules,
    }
    bundle = s.Bundle.model_validate(raw)
    return compile_bundle(bundle, bundle_version(bundle))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_specs, principals, requests)
def test_explain_agrees_with_decide(specs, p: Principal, f: RequestFacts) -> None:  # type: ignore[no-untyped-def]
    bundle = build(specs)
    explained = explain(p, f, bundle, NOW)
    assert explained.decision == decide(p, f, bundle, NOW)
    assert explained.trace_agrees, (explained.trace_rule_ids, explained.decision.rule_ids)
    for rule in explained.trace:
        holds = all(c.holds for c in rule.when) and not (
            rule.unless is not None and all(c.holds for c in rule.unless)
        )
        assert holds == rule.matched, rule
