"""Which rules ``gateway policy test`` saw match: OPA's ``opa test --coverage``
question, asked of rules rather than lines.

"N passed, 0 failed" says nothing of a rule no case exercises: a licence
written with its directive, and cases for the directive only, passed as if
both were tested. A rule counts as covered when some case's decision listed
it (deciding, lifting a deny, or matched in report mode); a case showing a
rule does *not* match is worth writing too, but is not counted here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from gateway.policy.compiled import CompiledBundle
from gateway.policy.loader import rule_locations
from gateway.policy.testing import CaseResult


def unmatched_rules(bundle: CompiledBundle, results: Iterable[CaseResult]) -> list[str]:
    """Ids of the bundle's rules no case's decision listed, in declaration order."""
    seen: set[str] = set()
    for result in results:
        seen |= result.matched
    return [rule.id for rule in bundle.source.rules if rule.id not in seen]


def coverage_line(directory: Path, bundle: CompiledBundle, results: list[CaseResult]) -> str:
    """The line ``policy test`` prints under its summary (rich markup)."""
    # Imported here: the admin API's /policy/test reads unmatched_rules in a
    # serving worker, which must not carry the command line's rich.
    from rich.markup import escape

    missing = unmatched_rules(bundle, results)
    if not missing:
        return "[green]every rule matched in at least one case[/green]"
    where = {loc[0]: f"{loc[1]}:{loc[2]}" for loc in rule_locations(directory) if loc is not None}
    named = ", ".join(
        f"{escape(rule_id)} ({escape(where[rule_id])})" if rule_id in where else escape(rule_id)
        for rule_id in missing
    )
    total = len(bundle.source.rules)
    return f"[yellow]rules no case saw match ({len(missing)} of {total}):[/yellow] {named}"
