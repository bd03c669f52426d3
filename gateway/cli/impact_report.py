"""How `gateway policy impact` prints its report (``gateway.policy.impact_counts.ImpactReport``)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.policy.impact_counts import ImpactReport

MAX_CUSTOMER_ROWS = 50
"""Customers listed per direction; the count above the table is of them all."""


def _e(value: object) -> str:
    # Bundle text (rule ids, model names) is escaped: rich would read '[x]' as markup.
    return escape(str(value))


def print_impact(console: Console, report: ImpactReport, candidate: str) -> None:
    """The report of ``gateway policy impact`` against the bundle of version ``candidate``."""
    console.print(
        f"{report.total} recorded decisions, {report.skipped} skipped, "
        f"{report.unchanged} unchanged, [red]{report.to_deny} allow->deny[/red], "
        f"[green]{report.to_allow} deny->allow[/green]"
    )
    replayed = sum(count.replayed for count in report.by_version.values())
    for rule_id, before in sorted(report.not_yet_effective.items()):
        start = report.rule_starts[rule_id].isoformat().replace("+00:00", "Z")
        # Said before any table: "0 allow->deny" is otherwise read as "it cuts nobody".
        console.print(
            f"[yellow]note:[/yellow] rule {_e(rule_id)} takes effect {start}, after {before} of "
            f"the {replayed} replayed decisions, so it could not apply to them; to see whom it "
            f"will refuse, replay them at that instant: --at {start}"
        )
    for rule_id, before in sorted(report.still_effective.items()):
        end = report.rule_ends[rule_id].isoformat().replace("+00:00", "Z")
        # An order withdrawn from a later instant: its refusals replay unchanged.
        console.print(
            f"[yellow]note:[/yellow] rule {_e(rule_id)} ends {end} (until), after {before} of "
            f"the {replayed} replayed decisions, so it still applies to them; to see whom "
            f"its end lets back, replay them at that instant: --at {end}"
        )
    if report.refused_customers or report.admitted_customers:
        console.print(
            f"{len(report.refused_customers)} customers would be refused (allow->deny), "
            f"{len(report.admitted_customers)} admitted (deny->allow)",
            markup=False,
        )
    for rule_id, served in sorted(report.exempted.items()):
        # A licence changes no decision of its own customer: said here, or
        # the replay never shows whom it serves.
        customers = report.exempted_customers[rule_id]
        listed = ", ".join(f"{_e(c)} ({n})" for c, n in customers.most_common(MAX_CUSTOMER_ROWS))
        beyond = (
            f" and {len(customers) - MAX_CUSTOMER_ROWS} more"
            if len(customers) > MAX_CUSTOMER_ROWS
            else ""
        )
        console.print(
            f"exemption {_e(rule_id)} lifts a deny for {served} replayed "
            f"decision{'s' if served != 1 else ''} of {len(customers)} "
            f"customer{'s' if len(customers) != 1 else ''}: {listed}{beyond}"
        )
    if report.not_policy:
        statuses = ", ".join(
            f"{count} with status {status}"
            for status, count in sorted(report.not_policy_by_status.items())
        )
        console.print(
            f"{report.not_policy} not replayed: refused outside the policy rules "
            f"(quota, authentication, malformed request): {statuses}",
            markup=False,
        )
    if report.by_version:
        # The reference is the version in force (the newest record's), which
        # the candidate would replace: only flips of records decided under
        # another version mix the candidate's edits with changes made since
        # (drift). Comparing with the candidate's version labelled every flip
        # drift, since no record is decided by a bundle not yet deployed.
        in_force = report.in_force
        if in_force is None:
            line = "in force: unknown (no record names its policy version)"
        else:
            newest = "loaded last" if report.in_force_loaded else "of the newest record"
            line = f"in force: {in_force[:12]} (the version {newest})"
            if in_force == candidate:
                line += "; it is the candidate"
        console.print(line, markup=False)
        versions = Table(title="replayed by the policy version that decided them")
        versions.add_column("recorded version")
        versions.add_column("replayed", justify="right")
        versions.add_column("allow->deny", justify="right")
        versions.add_column("deny->allow", justify="right")
        versions.add_column("note")
        for version, count in sorted(report.by_version.items(), key=lambda kv: -kv[1].replayed):
            versions.add_row(
                _e(version[:12]),
                str(count.replayed),
                str(count.to_deny),
                str(count.to_allow),
                report.version_role(version, candidate),
            )
        console.print(versions)
        drift = report.drift_flips(candidate)
        if drift:
            console.print(
                f"{drift} of the flips are of records decided under a version other than "
                "the one in force: they include every change made since that version, "
                "not only the candidate's",
                markup=False,
            )
    for title, counter, heading in (
        ("rule", report.by_rule, "flips by rule"),
        ("model", report.by_model, "flips by model"),
        ("tier", report.by_tier, "flips by tier"),
        ("origin country", report.by_country, "flips by origin country"),
        ("rule", report.from_report, "flips by rules that were in report mode, now enforced"),
        ("report-mode rule", report.report_matches, "replayed decisions report rules match"),
    ):
        if not counter:
            continue
        table = Table(title=heading)
        table.add_column(title)
        table.add_column(
            "matches" if counter is report.report_matches else "flips", justify="right"
        )
        for key, flips in counter.most_common():
            table.add_row(_e(key), str(flips))
        console.print(table)
    for title, counter in (
        ("allow->deny by customer", report.refused_customers),
        ("deny->allow by customer", report.admitted_customers),
    ):
        if not counter:
            continue
        table = Table(title=f"{title} (most flips first, {MAX_CUSTOMER_ROWS} at most)")
        table.add_column("customer")
        table.add_column("flips", justify="right")
        for customer, flips in counter.most_common(MAX_CUSTOMER_ROWS):
            table.add_row(_e(customer), str(flips))
        console.print(table)
        if len(counter) > MAX_CUSTOMER_ROWS:
            more = len(counter) - MAX_CUSTOMER_ROWS
            console.print(f"... and {more} more customers", markup=False)
    for flip in report.examples:
        console.print(
            f"  e.g. {flip.record_id or '?'} customer {flip.customer_id} {flip.model} "
            f"from {flip.origin or 'unknown'}: {flip.old} -> {flip.new} "
            f"({', '.join(flip.new_rule_ids)}; recorded under "
            f"{(flip.policy_version or 'unknown')[:12]})",
            markup=False,
        )
    for error in report.errors:
        console.print(f"[yellow]skipped:[/yellow] {_e(error)}")
