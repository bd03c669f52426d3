"""Control traced through ownership chains (OFAC 50% rule, "directly or
indirectly"), through the bundled policy and the real engine."""

from __future__ import annotations

import json

import pytest

from gateway.identity.ownership import (
    Ownership,
    control_paths,
    controlled_share,
    owner_countries,
)
from gateway.policy.compiled import CompiledBundle
from gateway.policy.control import control_explanation
from gateway.policy.engine import decide
from gateway.policy.replay import from_replay, replay_facts
from tests.policy.conftest import AFTER_DIRECTIVE, facts, principal

RULE = "controlled-by-country-of-concern"
CN_100 = Ownership("CN", 100.0)


def org(*owners: Ownership) -> object:
    return principal(kind="organization", tier="enterprise", kyc_level="kyb_verified",
                     incorporated_in="SG", ownership=owners)  # fmt: skip


def refused_by_control(bundle: CompiledBundle, *owners: Ownership) -> bool:
    d = decide(org(*owners), facts(), bundle, AFTER_DIRECTIVE)  # type: ignore[arg-type]
    return RULE in d.rule_ids


@pytest.mark.parametrize(
    ("owners", "controlled"),
    [
        # A Singapore holding company wholly owned from CN holds 60%: refused.
        ((Ownership("SG", 60.0, "Lion Holdings Pte", (CN_100,)), Ownership("SG", 40.0)), True),
        # FAQ 401: X 50% of A, A 50% of B: B is blocked (not 25%).
        ((Ownership("SG", 50.0, "A", (Ownership("CN", 50.0), Ownership("SG", 50.0))),), True),
        # Aggregated across branches: 20% direct + 30% through a controlled parent.
        (
            (Ownership("CN", 20.0), Ownership("SG", 30.0, "A", (CN_100,)), Ownership("SG", 50.0)),
            True,
        ),
        # A minority through a controlled parent: 40% is under 50.
        ((Ownership("SG", 40.0, "A", (CN_100,)), Ownership("SG", 60.0)), False),
        # The parent itself is not controlled (49%): none of its share counts.
        ((Ownership("SG", 100.0, "A", (Ownership("CN", 49.0), Ownership("SG", 51.0))),), False),
        # Three levels: CN controls C, C controls B, B holds 60% of the customer.
        (
            (Ownership("SG", 60.0, "B", (Ownership("SG", 55.0, "C", (Ownership("CN", 51.0),)),)),),
            True,
        ),
        # An entity owned from several countries of concern together (30 CN + 25 RU).
        ((Ownership("DE", 50.0, "A", (Ownership("CN", 30.0), Ownership("RU", 25.0))),), True),
    ],
)
def test_control_is_traced_through_chains(
    default_bundle: CompiledBundle, owners: tuple[Ownership, ...], controlled: bool
) -> None:
    assert refused_by_control(default_bundle, *owners) is controlled


def test_threshold_comparator_applies_at_every_level(make_bundle: object) -> None:
    build = make_bundle  # a bundle with a 60% threshold: a 55% parent is not controlled
    bundle = build(  # type: ignore[operator]
        "rules:\n"
        "  - {id: control, effect: deny, when: {controlled_by_in: [CN]}}\n"
        "  - {id: ok, effect: allow, when: {}}\n",
        extra={"settings.yaml": "control_threshold_percent: 60\n"},
    )
    parent_55 = Ownership("SG", 100.0, "A", (Ownership("CN", 55.0),))
    parent_60 = Ownership("SG", 100.0, "A", (Ownership("CN", 60.0),))
    assert decide(org(parent_55), facts("small"), bundle, AFTER_DIRECTIVE).rule_ids == ("ok",)  # type: ignore[arg-type]
    assert decide(org(parent_60), facts("small"), bundle, AFTER_DIRECTIVE).rule_ids == ("control",)  # type: ignore[arg-type]


def test_flat_records_mean_what_they_did() -> None:
    flat = (Ownership("CN", 30.0), Ownership("HK", 25.0), Ownership("US", 45.0))
    assert controlled_share(flat, {"CN", "HK"}, 50.0) == 55.0
    assert controlled_share(flat, {"CN"}, 50.0) == 30.0
    assert list(owner_countries(flat)) == ["CN", "HK", "US"]


def test_eight_levels_are_traced() -> None:
    chain = CN_100
    for level in range(7):
        chain = Ownership("SG", 100.0, f"L{level}", (chain,))
    assert controlled_share((chain,), {"CN"}, 50.0) == 100.0
    assert "CN" in set(owner_countries((chain,)))
    assert control_paths((chain,), {"CN"}, 50.0) == [
        "L6 (SG) 100% <- L5 (SG) 100% <- L4 (SG) 100% <- L3 (SG) 100% <- L2 (SG) 100% "
        "<- L1 (SG) 100% <- L0 (SG) 100% <- CN 100%"
    ]


def test_a_chain_refusal_explains_its_path_and_replays(default_bundle: CompiledBundle) -> None:
    p = org(
        Ownership("SG", 60.0, "Lion Holdings Pte", (CN_100,)),
        Ownership("SG", 40.0, "Tiger Capital"),
    )
    f = facts()
    d = decide(p, f, default_bundle, AFTER_DIRECTIVE)  # type: ignore[arg-type]
    assert d.rule_ids == (RULE,)
    assert control_explanation(p, d, default_bundle, f, AFTER_DIRECTIVE) == {  # type: ignore[arg-type]
        RULE: {
            "share_percent": 60.0,
            "threshold_percent": 50.0,
            "paths": ["Lion Holdings Pte (SG) 60% <- CN 100%"],
        }
    }
    stored = json.loads(json.dumps(replay_facts(p, f)))  # type: ignore[arg-type]
    assert stored["principal"]["ownership"] == [
        {"country": "SG", "percent": 60.0, "name": "Lion Holdings Pte",
         "ownership": [{"country": "CN", "percent": 100.0}]},
        {"country": "SG", "percent": 40.0, "name": "Tiger Capital"},
    ]  # fmt: skip
    p2, f2 = from_replay(stored)
    assert p2 == p
    assert decide(p2, f2, default_bundle, AFTER_DIRECTIVE) == d


def test_flat_refusals_keep_their_facts_and_have_no_chain_explanation(
    default_bundle: CompiledBundle,
) -> None:
    p = org(Ownership("CN", 60.0), Ownership("SG", 40.0))
    f = facts()
    d = decide(p, f, default_bundle, AFTER_DIRECTIVE)  # type: ignore[arg-type]
    assert d.rule_ids == (RULE,)
    assert control_explanation(p, d, default_bundle, f, AFTER_DIRECTIVE) is None  # type: ignore[arg-type]
    stored = replay_facts(p, f)  # type: ignore[arg-type]
    assert stored["principal"]["ownership"] == [
        {"country": "CN", "percent": 60.0}, {"country": "SG", "percent": 40.0}
    ]
