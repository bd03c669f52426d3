"""`gateway customers rescreen [--new-only]`: screen customers against
GATEWAY_SANCTIONS_LIST again, without restarting the gateway.

A batch at a time, each its own transaction (``gateway.kyc.rescreen``): the
running gateway's writers wait for one batch at most, and the held customers
reach every process through the admin-action log within the change-poll
interval. ``--new-only`` screens only those screened against another list
version or threshold (or none): what ``gateway serve`` does at start-up, and
what resumes a run cut short. The summary says how many changed status
(screening only escalates: ``clear`` to ``potential_match``) and where every
customer stands after it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy import func, select

from gateway.cli.db_command import (
    Sessions,
    cli_actor,
    cli_screener,
    console,
    db_settings,
    fail,
    run_db,
)
from gateway.kyc.list_update import LIST_UPDATE_ACTOR, screened_otherwise
from gateway.kyc.rescreen import RescreenOutcome, rescreen_in_batches
from gateway.kyc.tables import Customer
from gateway.settings import Settings

STATUSES = ("clear", "potential_match", "confirmed_match")


def register(customers_app: typer.Typer) -> None:
    customers_app.command("rescreen")(rescreen)


def rescreen(
    new_only: Annotated[
        bool,
        typer.Option("--new-only", help="Only customers screened against another list version "
                                        "or threshold, as `gateway serve` does at start-up."),
    ] = False,
    as_list_update: Annotated[
        bool, typer.Option("--as-list-update", hidden=True,
                           help="Record as gateway:sanctions-list-update (gateway serve's run).")
    ] = False,
) -> None:
    """Screen every customer against GATEWAY_SANCTIONS_LIST again; run it after
    each list update. New hits are held as potential_match (served as public
    until a compliance review clears them); nobody is cleared."""
    settings = db_settings()
    if settings.sanctions_list is None:
        raise fail("GATEWAY_SANCTIONS_LIST is not set: there is no list to screen against", 2)
    screener = cli_screener(settings)
    if screener is None:  # unreachable: a list that is set loads or is a usage error
        raise fail("GATEWAY_SANCTIONS_LIST could not be loaded", 2)
    actor = LIST_UPDATE_ACTOR if as_list_update else cli_actor()
    where = screened_otherwise(screener) if new_only else None

    async def work(_: Settings, sessions: Sessions) -> tuple[RescreenOutcome, dict[str, int]]:
        outcome = await rescreen_in_batches(sessions, screener, actor, datetime.now(UTC),
                                            where=where)  # fmt: skip
        async with sessions() as session:
            query = select(Customer.sanctions_status, func.count()).group_by(
                Customer.sanctions_status
            )
            counts = {str(status): int(n) for status, n in (await session.execute(query)).all()}
        return outcome, counts

    outcome, counts = run_db(work)
    standing = ", ".join(f"{counts.get(status, 0)} {status}" for status in STATUSES)
    console.print(
        f"screened {outcome.screened} customers against list {screener.version} "
        f"(threshold {screener.threshold}): {len(outcome.held)} newly held as "
        f"potential_match; now: {standing}",
        markup=False,
        soft_wrap=True,
    )
    for record in outcome.held:
        # Each hit no review has cleared yet: what the reviewer is to look at.
        for hit in record.screening.hits:
            if not hit.reviewed:
                console.print(
                    f"  {record.id}  {hit.screened_name!r} ~ {hit.listed_name!r} "
                    f"(score {hit.score}, {hit.source or 'source not given'})",
                    markup=False,
                    soft_wrap=True,
                )
