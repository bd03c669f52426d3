"""Report-mode ("shadow") rules: matched like enforced rules, never deciding.

``engine._decide`` asks ``match_report_rules`` for the report-mode rules of the
requested model that are in force and match, just before it evaluates the
enforced ones; the decision then lists them in ``report_rule_ids`` and
``report_reasons`` (``decision.ReportedDecision``) and nothing else changes.

A report rule only observes, so an exception while evaluating one must not
turn into a refusal the way an enforced rule's does (``evaluation-error``,
fail closed): it is logged loudly and listed as the report match
``evaluation-error``, and the decision stands.
"""

from __future__ import annotations

import logging
from datetime import datetime

from gateway.policy.conditions import EvalContext
from gateway.policy.decision import EVALUATION_ERROR
from gateway.policy.ruleindex import RuleIndex

log = logging.getLogger("gateway.policy")

REPORT_ERROR_REASON = "The gateway could not evaluate its report-mode rules for this request."

Report = tuple[tuple[str, ...], tuple[str, ...]]
"""(ids, reasons) of the report-mode rules that matched."""
NO_REPORT: Report = ((), ())
"""No match: compared by identity on the hot path."""


def match_report_rules(index: RuleIndex, ctx: EvalContext, now: datetime) -> Report:
    """The report-mode rules of ``index`` that match; never raises."""
    try:
        hits = [r for r in index.candidates(ctx) if r.active(now) and r.predicate(ctx)]
    except Exception:  # loud, but a rule that only observes must not refuse the request
        log.exception(
            "report-mode rule evaluation failed (customer=%s model=%s): decision unaffected",
            ctx.principal.customer_id,
            ctx.facts.body.model,
        )
        return (EVALUATION_ERROR,), (REPORT_ERROR_REASON,)
    if not hits:
        return NO_REPORT
    return tuple(r.id for r in hits), tuple(r.reason for r in hits)
