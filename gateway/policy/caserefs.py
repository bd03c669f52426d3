"""The names a policy test case uses, checked against the bundle it runs on.

A case naming a model, tier, KYC level, capability or rule id the bundle does
not have, or expecting a report-mode rule to decide (or an enforced one to be
merely reported), tests nothing: it would pass or fail for a reason unrelated
to the policy, so ``run_tests`` reports it as a test-file error with its line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.policy.compiled import CompiledBundle
from gateway.policy.names import RESERVED_RULE_IDS, RESERVED_RULE_PREFIXES
from gateway.policy.yamlsrc import DataPath

if TYPE_CHECKING:  # testing.py imports this module
    from gateway.policy.testing import CaseIn


def case_references(case: CaseIn, bundle: CompiledBundle) -> list[tuple[DataPath, str]]:
    """Names in a case the bundle does not define, by path inside the case.

    A case naming a model, tier, KYC level or rule id the bundle does not
    have tests nothing: it would pass or fail for a reason unrelated to the
    policy, so it is a test-file error. (Codes no record or request could
    hold, such as an origin that is no ISO code, are ``caserecord``'s.)
    """
    problems: list[tuple[DataPath, str]] = []
    p, req, exp = case.principal, case.request, case.expect
    if req.model not in bundle.models and not req.unknown_model:
        problems.append(
            (
                ("request", "model"),
                f"unknown model '{req.model}' (set unknown_model: true to test one on purpose)",
            )
        )
    for i, cap in enumerate(req.capabilities or ()):
        if cap not in bundle.capability_names():
            problems.append((("request", "capabilities", i), f"unknown capability '{cap}'"))
    if p.tier not in bundle.tiers:
        problems.append((("principal", "tier"), f"unknown tier '{p.tier}'"))
    if p.kyc_level not in bundle.kyc_levels:
        problems.append((("principal", "kyc_level"), f"unknown KYC level '{p.kyc_level}'"))
    if exp.tier is not None and exp.tier not in bundle.tiers:
        problems.append((("expect", "tier"), f"unknown tier '{exp.tier}'"))
    rule_ids = {r.id for r in bundle.rules}
    reported = bundle.report_rule_ids()
    for i, rule_id in enumerate(exp.rule_ids or ()):
        engine_id = rule_id in RESERVED_RULE_IDS or rule_id.startswith(RESERVED_RULE_PREFIXES)
        if rule_id not in rule_ids and not engine_id:
            problems.append((("expect", "rule_ids", i), f"unknown rule id '{rule_id}'"))
        elif rule_id in reported:
            # It can never be there: saying so beats a failure that looks like a policy bug.
            problems.append(
                (
                    ("expect", "rule_ids", i),
                    f"rule '{rule_id}' is in report mode: "
                    "it never decides; expect it under report_rule_ids",
                )
            )
    for i, rule_id in enumerate(exp.report_rule_ids or ()):
        if rule_id not in rule_ids:
            problems.append((("expect", "report_rule_ids", i), f"unknown rule id '{rule_id}'"))
        elif rule_id not in reported:
            # Typically a rule switched to enforce: the case must now expect it in rule_ids.
            problems.append(
                (
                    ("expect", "report_rule_ids", i),
                    f"rule '{rule_id}' is enforced (not in report mode): expect it under rule_ids",
                )
            )
    return problems
