"""`gateway customers withdraw-clearance ID --reason TEXT`: an officer takes
back the compliance reviews that cleared a customer's screening hits.

The admin API's ``PATCH`` with a ``sanctions_status`` other than ``clear``
(and a ``reason``): the customer is held (``potential_match``, or
``confirmed_match`` with ``--confirmed``; a confirmed match is never lowered),
every review in force is withdrawn, and the withdrawal is recorded as
``customer.screening_withdraw`` in the history and the admin-action log
(``gateway.kyc.reviews``). A reason is required here: the CLI has no older
callers to keep working without one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError

from gateway.cli.customers import (
    Sessions,
    cli_actor,
    console,
    fail,
    run_db,
    validation_message,
)
from gateway.kyc import service
from gateway.kyc.customer_locks import lock_customers
from gateway.kyc.reviews import reviews_of
from gateway.kyc.schemas import CustomerPatch
from gateway.settings import Settings


def register(customers_app: typer.Typer) -> None:
    customers_app.command("withdraw-clearance")(withdraw_clearance)


def withdraw_clearance(
    customer_id: str,
    reason: Annotated[
        str, typer.Option(help="Why (recorded with the withdrawal, e.g. what was learnt).")
    ],
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="Hold as confirmed_match, not potential_match.")
    ] = False,
) -> None:
    """Withdraw every review that cleared a customer's screening hits and hold
    it; each hit is then unreviewed until a new compliance review clears it."""

    async def work(_: Settings, sessions: Sessions) -> tuple[str, int] | None:
        async with sessions() as session:
            # Locked before it is read: the status decided on below is the one
            # written over (a confirmed_match set meanwhile was lowered).
            await lock_customers(session, [customer_id])
            try:
                c = await service.get_customer(session, customer_id)
            except service.CustomerNotFound:
                return None
            held = "confirmed_match" if confirmed else "potential_match"
            if c.sanctions_status == "confirmed_match":
                held = "confirmed_match"  # a confirmed match is never lowered here
            try:
                patch = CustomerPatch(sanctions_status=held, reason=reason)
            except ValidationError as exc:
                raise fail(validation_message(exc), 2) from exc
            in_force = len(await reviews_of(session, customer_id))
            row = await service.update_customer(
                session, customer_id, patch, cli_actor(), None, datetime.now(UTC)
            )
            await session.commit()
            return row.sanctions_status, in_force

    done = run_db(work)
    if done is None:
        raise fail(f"customer {customer_id!r} not found")
    status, withdrawn = done
    plural = "" if withdrawn == 1 else "s"
    console.print(
        f"customer {customer_id} is now {status}: {withdrawn} review{plural} withdrawn",
        markup=False,
        soft_wrap=True,
    )
