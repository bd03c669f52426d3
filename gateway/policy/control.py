"""Why an organization was refused for who owns it, through which chain.

A refusal by ``controlled_by_in`` of a customer whose record lists owners of
owners explains itself in its decision record (``facts.ownership_control``):
per deciding rule, the controlled share and the path of each owner that made
it, e.g. ``Lion Holdings Pte (SG) 60% <- CN 100%``, so an auditor reading why
a Singapore company was refused does not have to redo the OFAC arithmetic.
Written for chains only: a flat record's refusal explains itself already
(its ``ownership`` lists the countries) and its facts keep their bytes.

The set explained is the one on the branch of the rule's ``when`` that the
engine took (``fired_control_set``), not merely one that holds: in ``any:
[{controlled_by_in: [FR], origin_in: [CN]}, {controlled_by_in: [DE, FR]}]``
from the US, FR control holds but its alternative does not, and the rule
fired on the second. So the condition tree is walked again on the engine's
own ``EvalContext`` (refusals of nested ownership only; never an allow).

Computed from the decision and the bundle snapshot after ``decide`` (which
stays as it is: the explanation is for readers, not an input; replays ignore it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.identity.ownership import control_paths, controlled_share, is_nested, reaches
from gateway.identity.principal import Principal
from gateway.policy import schema as s
from gateway.policy.compiled import CompiledBundle
from gateway.policy.conditions import CompileEnv, EvalContext, compile_condition
from gateway.policy.decision import Decision
from gateway.policy.engine import eval_context
from gateway.policy.facts import RequestFacts
from gateway.policy.names import resolve_country_set

FACTS_KEY = "ownership_control"
RECORD_PATH_CHARS = 2048
"""The paths a decision record keeps: in order, while they fit in this many
characters (the first always). A 256-entry tree controlled through every
branch has 252 paths of two 512-character names: ~255 KB on each refused
request. The record then says ``paths_total``; the rest follow from the tree
it names (``ownership_sha256``) and the policy version it names, both proven
by their digests (``gateway policy explain`` shows them all)."""


def control_explanation(
    principal: Principal,
    decision: Decision,
    bundle: CompiledBundle,
    facts: RequestFacts,
    now: datetime,
    path_chars: int | None = None,
) -> dict[str, Any] | None:
    """``{rule_id: {share_percent, threshold_percent, paths}}`` for each deciding
    deny rule that fired through a ``controlled_by_in`` held through a chain;
    None otherwise. ``facts`` and ``now`` are the decision's (its context).
    ``path_chars``: keep only the paths that fit (``RECORD_PATH_CHARS``), and
    ``paths_total`` when some were left out."""
    if decision.allowed or not is_nested(principal.ownership):
        return None
    deciding = set(decision.rule_ids)
    threshold = bundle.control_threshold_percent
    env = CompileEnv(groups=bundle.source.country_groups, kyc_rank=bundle.kyc_rank)
    ctx: EvalContext | None = None
    explained: dict[str, Any] = {}
    for rule in bundle.rules:
        if rule.id not in deciding or not rule.controllers:
            continue
        if ctx is None:
            ctx = eval_context(principal, facts, bundle, decision.effective_tier, now)
        countries = fired_control_set(bundle.source.rules[rule.index].when, ctx, env)
        if countries is None:
            continue  # fired for another of its conditions: nothing to trace
        share = controlled_share(principal.ownership, countries, threshold)
        if reaches(share, threshold):
            paths = control_paths(principal.ownership, countries, threshold)
            explained[rule.id] = {"share_percent": share, "threshold_percent": threshold,
                                  **_bounded(paths, path_chars)}
    return explained or None


def _bounded(paths: list[str], chars: int | None) -> dict[str, Any]:
    if chars is None:
        return {"paths": paths}
    kept: list[str] = []
    used = 0
    for path in paths:
        used += len(path)
        if kept and used > chars:
            return {"paths": kept, "paths_total": len(paths)}
        kept.append(path)
    return {"paths": kept}


def fired_control_set(
    cond: s.Condition, ctx: EvalContext, env: CompileEnv
) -> frozenset[str] | None:
    """The country set of the first ``controlled_by_in`` on the path the engine
    took through ``cond`` (which held): its own key, else the alternative of
    ``any`` that held first (``any()`` stops there), else each part of ``all``.
    A ``not`` refuses for an absence of control, which has no path to show."""
    if cond.controlled_by_in is not None:
        return resolve_country_set(cond.controlled_by_in, dict(env.groups))[0]
    if cond.any_ is not None:
        for sub in cond.any_:
            if compile_condition(sub, env)(ctx):
                found = fired_control_set(sub, ctx, env)
                if found is not None:
                    return found
                break  # the engine stopped at this alternative
    for sub in cond.all_ or ():
        found = fired_control_set(sub, ctx, env)
        if found is not None:
            return found
    return None
