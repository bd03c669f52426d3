"""`gateway audit` upkeep: prune (retention), seal (a dead writer's chain), hold (legal holds).

Registered on the ``gateway audit`` app by ``register``; exit codes as there.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.audit_common import audit_settings, console, time_option, with_engine
from gateway.cli.messages import error, note

hold_app = typer.Typer(no_args_is_help=True, help="Legal holds that block pruning.")


def register(app: typer.Typer) -> None:
    app.command()(prune)
    app.command()(seal)
    app.add_typer(hold_app, name="hold")


def prune(
    dry_run: Annotated[bool, typer.Option(help="Only say what would be removed.")] = False,
    days: Annotated[
        int | None, typer.Option(min=1, help="Override GATEWAY_AUDIT_RETENTION_DAYS (>= 1).")
    ] = None,
) -> None:
    """Remove records older than the retention period, in whole signed segments.

    Never past the first record an active legal hold covers. --days 0 or less is
    a usage error (it would remove everything up to the newest checkpoint).
    """
    from gateway.audit.retention import EXPORT_CONTROL_DAYS
    from gateway.audit.retention import prune as do_prune
    from gateway.audit.signing import SigningKeyError, load_signer

    settings = audit_settings()
    try:
        # Even a dry run: it should say now what the real run would refuse.
        signer = load_signer(settings, create=False)
    except SigningKeyError as exc:
        error(console(), f"prune signs a tombstone with the gateway's key: {exc} (set "
              "GATEWAY_AUDIT_SIGNING_KEY to the key the gateway signs with)")
        raise typer.Exit(2) from None
    keep = days if days is not None else settings.audit_retention_days
    out = console()
    if keep < EXPORT_CONTROL_DAYS:
        note(out, f"keeping {keep} days, less than the 5 years export-control records are "
             "kept for (EAR, 15 CFR 762.6)")
    results = with_engine(settings, lambda engine: do_prune(
        engine, signer, keep, datetime.now(UTC), dry_run=dry_run))
    for r in results:
        held = f" (legal hold from seq {r.held_at_seq})" if r.held_at_seq is not None else ""
        verb = "would remove" if dry_run else "removed"
        out.print(Text(f"{r.node_id}: {verb} {r.deleted} records through seq "
                           f"{r.through_seq}{held}"), highlight=False)
    if not results:
        out.print("nothing is past retention")


def seal(
    node: Annotated[str, typer.Option("--node", help="The chain (node id) to sign.")],
) -> None:
    """Sign the unsigned tail of a chain whose writer died and will not restart.

    Verify first: the signature vouches for the tail as it stands now. Exit 1 if
    the chain is held by a live writer or its head row disagrees with its records.
    """
    from gateway.audit.nodes import NodeUnavailable
    from gateway.audit.seal import seal_chain
    from gateway.audit.signing import SigningKeyError, load_signer

    settings = audit_settings()
    try:
        signer = load_signer(settings, create=False)
    except SigningKeyError as exc:
        error(console(), f"seal signs with the gateway's key: {exc}")
        raise typer.Exit(2) from None
    try:
        sealed = with_engine(settings, lambda engine: seal_chain(engine, settings, signer, node))
    except NodeUnavailable as exc:
        error(console(), str(exc))
        raise typer.Exit(1) from None
    done = "signed" if sealed.signed else "was already signed"
    console().print(Text(f"{sealed.node_id}: {done} through seq {sealed.seq} (head "
                         f"{sealed.head_hash})"), highlight=False)


@hold_app.command("add")
def hold_add(
    reason: Annotated[str, typer.Option(help="Why (case, request).")],
    customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
    from_: Annotated[str | None, typer.Option("--from")] = None,
    until: Annotated[str | None, typer.Option()] = None,
    by: Annotated[str, typer.Option(help="Who places it.")] = os.environ.get("USER", "cli"),
) -> None:
    from gateway.audit.retention import add_hold
    from gateway.kyc.schemas import ID_PATTERN

    if customer is not None and re.fullmatch(ID_PATTERN, customer) is None:
        raise typer.BadParameter(f"not a customer id ({ID_PATTERN}): {customer!r}",
                                 param_hint="'--customer'")
    start, end = time_option(from_, "from"), time_option(until, "until")
    hold_id = with_engine(audit_settings(), lambda engine: add_hold(
        engine, reason, by, datetime.now(UTC), customer, start, end))
    typer.echo(str(hold_id))


@hold_app.command("release")
def hold_release(hold_id: int) -> None:
    from gateway.audit.retention import release_hold

    released = with_engine(audit_settings(), lambda e: release_hold(e, hold_id, datetime.now(UTC)))
    if not released:
        console().print(f"no active hold {hold_id}")
        raise typer.Exit(1)


@hold_app.command("list")
def hold_list() -> None:
    from gateway.audit.retention import active_holds

    async def work(engine: AsyncEngine) -> list[Any]:
        async with engine.connect() as conn:
            return await active_holds(conn)

    from gateway.kyc.schemas import rfc3339

    def when(value: datetime | None) -> str:
        return rfc3339(value) if value is not None else "-"

    for h in with_engine(audit_settings(), work):
        typer.echo(f"{h.id}\t{h.customer_id or '*'}\t{when(h.from_ts)}\t{when(h.until_ts)}\t"
                   f"{h.created_by}\t{h.reason}")
