"""``gateway policy impact DIR --customers``: every customer record judged
against the candidate (``gateway.policy.exposure``), and how it prints."""

from __future__ import annotations

import asyncio
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.identity.principal import Principal
from gateway.policy.compiled import CompiledBundle
from gateway.policy.exposure import Change, exposure, unknown_customers

MAX_ROWS = 50
"""Customers listed per direction; the counts are of them all."""


async def load_principals() -> list[Principal]:
    """Every customer record in GATEWAY_DATABASE_URL, as the identify stage builds it."""
    from sqlalchemy import select

    from gateway.db.session import create_engine, session_factory
    from gateway.identity.store import principal_from
    from gateway.kyc.tables import Customer
    from gateway.settings import Settings

    engine = create_engine(Settings(demo=True))  # only the database URL is needed here
    try:
        async with session_factory(engine)() as session:
            rows = (await session.execute(select(Customer).order_by(Customer.id))).scalars()
            return [principal_from(row, None, "test") for row in rows]
    finally:
        await engine.dispose()


def print_exposure(
    console: Console,
    candidate: CompiledBundle,
    at: datetime,
    baseline: CompiledBundle | None,
    now: datetime,
) -> None:
    principals = asyncio.run(load_principals())
    report = exposure(principals, candidate, at, baseline, now)
    before = (
        f"{baseline.version[:12]} at the same instant"
        if baseline is not None
        else f"the candidate now ({_t(now)})"
    )
    console.print(
        f"{report.customers} active customers judged at {_t(at)} (each as a request from "
        f"its residence, for each model with no capability and with each one alone) "
        f"against {before}: {len(report.cut_customers())} lose a model or a capability on "
        f"one, {len({c.customer_id for c in report.granted})} gain one",
        markup=False,
    )
    known = {p.customer_id for p in principals}
    for rule_id, customer in unknown_customers(candidate.source, known):
        console.print(
            f"[yellow]warning:[/yellow] rule {escape(rule_id)} names customer_in "
            f"'{escape(customer)}', which no customer record holds: it matches nobody"
        )
    for rule in candidate.rules:
        if rule.mode == "enforce" and rule.start is not None and at < rule.start:
            console.print(
                f"[yellow]note:[/yellow] rule {escape(rule.id)} takes effect {_t(rule.start)}, "
                f"after {_t(at)}: it decides nothing here; judge at it with --at {_t(rule.start)}"
            )
    if report.by_rule:
        table = Table(title="customers cut, by the rule that refuses them")
        table.add_column("rule")
        table.add_column("customers", justify="right")
        for rule_id, count in report.by_rule.most_common():
            table.add_row(escape(rule_id), str(count))
        console.print(table)
    for title, changes in (("lose", report.cut), ("gain", report.granted)):
        if changes:
            console.print(_table(f"customers who {title} a model or a capability", changes))
            if len(changes) > MAX_ROWS:
                console.print(f"... and {len(changes) - MAX_ROWS} more", markup=False)


def _table(title: str, changes: list[Change]) -> Table:
    table = Table(title=f"{title} ({MAX_ROWS} rows at most)")
    columns = ("customer", "name", "citizenships", "residence", "model", "capability", "rules")
    for column in columns:
        table.add_column(column)
    for c in changes[:MAX_ROWS]:
        capability = "(the model)" if c.capability is None else escape(c.capability)
        table.add_row(
            escape(c.customer_id), escape(c.name), ", ".join(c.citizenships),
            c.residence or "-", escape(c.model), capability, escape(", ".join(c.rule_ids)),
        )  # fmt: skip
    return table


def _t(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
