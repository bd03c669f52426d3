"""``gateway serve``'s rescreen at start-up, when the sanctions list or the
threshold in force is new to any customer (``gateway.kyc.list_update``).

Up to ``GATEWAY_RESCREEN_INLINE_MAX`` customers (default 2000, about 2 s) are
screened before any worker starts, as before: the gateway then opens with
every verdict current. More would keep the port closed for minutes (about
1 ms per customer), and a supervisor probing ``/healthz`` would kill the
gateway it is waiting for. Those are screened by ``gateway customers
rescreen --new-only`` started beside the gateway, batch by batch, while it
serves. Until the rescreen reaches a customer, its ``clear`` is a verdict of
another list and is not served as one: the customer is held as a
``potential_match`` is (``public``; ``facts.screening.awaiting_rescreen`` in
its decision records, ``gateway.identity.screening_summary``). A compliance
officer putting a list in force expects it to apply to every request from
then on; a few minutes of ``public`` service for a customer is the lesser
harm. Held customers reach every worker through the admin-action log at
once; those found clear within the identify cache's TTL (30 s).

The background run is its own process (the serving process replaces this
one, ``exec``), in the gateway's process group, re-parented when the shell
that starts it exits; stopped early, the next start resumes it (it only
takes customers screened otherwise).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console

from gateway.kyc.screening import Screener
from gateway.settings import Settings

if TYPE_CHECKING:  # the rescreen's imports only when there is one to run
    from gateway.kyc.rescreen import RescreenOutcome

console = Console(stderr=True)

BACKGROUND_COMMAND = ("customers", "rescreen", "--new-only", "--as-list-update")


async def _pending(settings: Settings, screener: Screener) -> int:
    from gateway.db.session import create_engine, session_factory
    from gateway.kyc.list_update import screened_against_another_list

    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            return await screened_against_another_list(session, screener)
    finally:
        await engine.dispose()


async def _rescreen_now(settings: Settings, screener: Screener) -> RescreenOutcome | None:
    from gateway.db.session import create_engine, session_factory
    from gateway.kyc.list_update import rescreen_if_list_changed

    engine = create_engine(settings)
    try:
        return await rescreen_if_list_changed(session_factory(engine), screener, datetime.now(UTC))
    finally:
        await engine.dispose()


def _print(outcome: RescreenOutcome | None, screener: Screener) -> None:
    if outcome is None:
        return
    held = ", ".join(c.id for c in outcome.held[:20]) + (" ..." if len(outcome.held) > 20 else "")
    console.print(
        f"sanctions list {screener.version} is new: screened {outcome.screened} customers, "
        f"{len(outcome.held)} newly held as potential_match" + (f" ({held})" if held else ""),
        markup=False,
        soft_wrap=True,
    )


def start_background_rescreen() -> None:
    """``gateway customers rescreen --new-only`` beside the gateway: the shell
    starts it and exits, so it outlives the ``exec`` of this process."""
    command = [sys.executable, "-m", "gateway.cli.main", *BACKGROUND_COMMAND]
    subprocess.run(["/bin/sh", "-c", '"$@" &', "sh", *command], check=True)


def rescreen_at_start_up(settings: Settings, screener: Screener) -> None:
    """Before any worker starts: the customers screened against another list
    or threshold (or none), now or, past the inline bound, in the background."""
    pending = asyncio.run(_pending(settings, screener))
    if not pending:
        return
    if pending <= settings.rescreen_inline_max:
        _print(asyncio.run(_rescreen_now(settings, screener)), screener)
        return
    console.print(
        f"{pending} customers to screen against list {screener.version} (threshold "
        f"{screener.threshold}), more than GATEWAY_RESCREEN_INLINE_MAX "
        f"({settings.rescreen_inline_max}): screening them in the background; until "
        "reached, a customer screened against another list or threshold is held "
        "(served as public)",
        markup=False,
        soft_wrap=True,
    )
    start_background_rescreen()
