"""``gateway policy validate --check-customers``: the bundle's ``customer_in``
ids checked against the customer records in GATEWAY_DATABASE_URL.

Only the records know the ids, so validation alone cannot: a licence whose
customer id is mistyped validates clean, matches nobody, and the licensed
customer is refused once its directive starts. The database is read only
(ids alone), and must exist: a missing SQLite file is exit 2, never created.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.database import audit_settings, run_on_existing_database
from gateway.policy import schema as s
from gateway.policy.exposure import named_customers, unknown_customers


async def _customer_ids(engine: AsyncEngine) -> set[str]:
    from sqlalchemy import select

    from gateway.kyc.tables import Customer

    async with engine.connect() as connection:
        return set((await connection.execute(select(Customer.id))).scalars())


def warn_unknown_customers(console: Console, bundle: s.Bundle) -> None:
    """A warning per ``customer_in`` id no customer record holds, then the count."""
    named = named_customers(bundle)
    if not named:
        console.print("  customer_in ids: none in the bundle", markup=False)
        return
    known = run_on_existing_database(audit_settings(), _customer_ids)
    unknown = unknown_customers(bundle, known)
    for rule_id, customer in unknown:
        console.print(
            f"[yellow]warning:[/yellow] rule {escape(rule_id)} names customer_in "
            f"'{escape(customer)}', which no customer record holds: it matches nobody"
        )
    console.print(
        f"  customer_in ids: {len(named)} checked, {len({c for _, c in unknown})} unknown",
        markup=False,
    )
