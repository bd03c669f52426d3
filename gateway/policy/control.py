"""Why an organization was refused for who owns it, through which chain.

A refusal by ``controlled_by_in`` of a customer whose record lists owners of
owners explains itself in its decision record (``facts.ownership_control``):
per deciding rule, the controlled share and the path of each owner that made
it, e.g. ``Lion Holdings Pte (SG) 60% <- CN 100%``, so an auditor reading why
a Singapore company was refused does not have to redo the OFAC arithmetic.
Written for chains only: a flat record's refusal explains itself already
(its ``ownership`` lists the countries) and its facts keep their bytes.

Computed from the decision and the bundle snapshot after ``decide`` (which
stays as it is: the explanation is for readers, not an input; replays ignore it).
"""

from __future__ import annotations

from typing import Any

from gateway.identity.ownership import control_paths, controlled_share, is_nested, reaches
from gateway.identity.principal import Principal
from gateway.policy.compiled import CompiledBundle
from gateway.policy.decision import Decision

FACTS_KEY = "ownership_control"


def control_explanation(
    principal: Principal, decision: Decision, bundle: CompiledBundle
) -> dict[str, Any] | None:
    """``{rule_id: {share_percent, threshold_percent, paths}}`` for each deciding
    deny rule whose control condition holds through a chain; None otherwise."""
    if decision.allowed or not is_nested(principal.ownership):
        return None
    deciding = set(decision.rule_ids)
    threshold = bundle.control_threshold_percent
    explained: dict[str, Any] = {}
    for rule in bundle.rules:
        if rule.id not in deciding:
            continue
        # Each condition's set apart, as the engine tests it (two sets are
        # never added together): the first one that holds is the explanation.
        for countries in rule.controllers:
            share = controlled_share(principal.ownership, countries, threshold)
            if reaches(share, threshold):
                explained[rule.id] = {
                    "share_percent": share,
                    "threshold_percent": threshold,
                    "paths": control_paths(principal.ownership, countries, threshold),
                }
                break
        # None held: refused for another of its conditions, nothing to trace.
    return explained or None
