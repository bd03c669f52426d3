"""`gateway policy impact` names the requests an exemption would serve.

A licence under a directive changes no decision of the licensed customer
(allowed before, allowed after), so the report said "unchanged" and nothing
else: the officer could not see from the replay that the licence matched the
customer it was written for, nor whom else it spares.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from gateway.policy.compiled import CompiledBundle
from gateway.policy.impact import impact
from gateway.policy.replay import replay_facts
from tests.policy.conftest import facts, principal

RULES = """\
rules:
  - id: directive-cn-small
    effect: deny
    when: {model_in: [small], citizenship_in: [CN]}
  - id: licence-cn-lab
    effect: exempt
    exempts: [directive-cn-small]
    when: {customer_in: [cn-lab]}
  - id: entitlement
    effect: allow
    when: {model_allowed_for_tier: true}
"""
TS = datetime(2026, 11, 28, 9, tzinfo=UTC)


def record(customer: str, citizenship: str) -> dict[str, object]:
    who = principal(customer_id=customer, tier="enterprise", kyc_level="kyb_verified",
                    citizenships={citizenship}, residence="SG")  # fmt: skip
    return {"facts": replay_facts(who, facts("small", "SG")), "decision": "allow",
            "status": 200, "ts": TS, "rule_ids": ["entitlement"]}  # fmt: skip


def test_impact_counts_the_decisions_and_customers_an_exemption_serves(
    make_bundle: Callable[..., CompiledBundle],
) -> None:
    bundle = make_bundle(RULES)
    records = [record("cn-lab", "CN"), record("cn-lab", "CN"), record("cn-dev", "CN"),
               record("jp-dev", "JP")]  # fmt: skip
    report = impact(records, bundle)
    assert (report.unchanged, report.to_deny) == (3, 1)
    assert report.exempted == {"licence-cn-lab": 2}
    assert report.exempted_customers == {"licence-cn-lab": {"cn-lab": 2}}


def test_the_report_prints_each_exemption_with_its_customers(
    make_bundle: Callable[..., CompiledBundle],
) -> None:
    from rich.console import Console

    from gateway.cli.impact_report import print_impact

    bundle = make_bundle(RULES)
    report = impact([record("cn-lab", "CN"), record("cn-dev", "CN")], bundle)
    console = Console(record=True, width=200)
    print_impact(console, report, bundle.version)
    assert (
        "exemption licence-cn-lab lifts a deny for 1 replayed decision of 1 customer: cn-lab (1)"
        in console.export_text()
    ), console.export_text()
