"""`gateway customers` commands: KYC records, straight on GATEWAY_DATABASE_URL.

The CLI writes to the database directly, with a row in ``admin_actions`` in
the same transaction; every running gateway process reads those rows within
``GATEWAY_CHANGE_POLL_SECONDS`` (1 s) and drops what it had cached
(``gateway/ops/changefeed.py``). Only ``add`` creates a missing SQLite
file (``gateway.cli.database``). Exit codes: 0 ok, 1 not found / refused,
2 usage error (a missing database file, bad option, invalid country code, a
KYC level or tier the bundle in GATEWAY_POLICY_DIR does not define: when that
bundle cannot be loaded the check is skipped with a warning).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, get_args

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from gateway.cli.db_command import (
    Sessions,
    check_names,
    cli_actor,
    cli_screener,
    console,
    db_settings,
    fail,
    run_db,
    table_console,
    validation_message,
)
from gateway.kyc import service
from gateway.kyc.schemas import (
    CustomerCreate,
    CustomerPatch,
    CustomerStatus,
    SanctionsStatus,
)
from gateway.kyc.schemas_out import CustomerOut
from gateway.kyc.screening import Screener
from gateway.settings import Settings

__all__ = [  # the shared plumbing stays importable from here (it lives in db_command)
    "Sessions",
    "app",
    "check_names",
    "cli_actor",
    "cli_screener",
    "console",
    "db_settings",
    "fail",
    "run_db",
    "validation_message",
]

app = typer.Typer(no_args_is_help=True)


def _owner(value: str) -> dict[str, Any]:
    country, sep, pct = value.partition(":")
    if not sep:
        raise typer.BadParameter(f"{value!r}: expected COUNTRY:PERCENT, e.g. CN:60")
    try:
        return {"country": country, "percent": float(pct)}
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: percent must be a number") from exc


def _ownership(owners: list[str] | None, as_json: str | None) -> Any:
    """``--owner`` (flat, repeatable) or ``--ownership`` (JSON, chains), not both."""
    if as_json is None:
        return [_owner(o) for o in owners or []]
    if owners:
        raise typer.BadParameter("give --owner or --ownership, not both")
    try:
        return json.loads(as_json)
    except ValueError as exc:
        raise typer.BadParameter(f"--ownership is not JSON ({exc})") from exc
    except RecursionError:
        # json.loads recurses per level; no record nests this deep (a chain is
        # at most 8 levels), and a traceback is not a usage error.
        raise typer.BadParameter("--ownership is JSON nested too deep to read") from None


def render(record: CustomerOut) -> Table:
    table = Table(show_header=False, title=f"customer {escape(record.id)}")
    for key, value in record.model_dump(mode="json").items():
        table.add_row(key, "" if value is None else escape(str(value)))
    return table


@app.command("add")
def add(
    name: str,
    id: Annotated[str | None, typer.Option(help="Your own id; generated if omitted.")] = None,
    kind: Annotated[str, typer.Option(help="individual | organization")] = "individual",
    citizenship: Annotated[list[str] | None, typer.Option(help="ISO code; repeatable.")] = None,
    residence: Annotated[
        str | None, typer.Option(help="ISO country (UA) or ISO 3166-2 region (UA-43).")
    ] = None,
    incorporated_in: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[list[str] | None, typer.Option(help="COUNTRY:PERCENT; repeatable.")] = None,
    ownership: Annotated[
        str | None,
        typer.Option(help="The ownership list as JSON, as the admin API takes it: owning "
                          "entities may give a name and their own ownership (a chain)."),
    ] = None,
    kyc_level: Annotated[str, typer.Option()] = "none",
    kyc_expires_at: Annotated[str | None, typer.Option(help="RFC 3339 time.")] = None,
    tier: Annotated[str, typer.Option()] = "public",
    attribute: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    sanctions_status: Annotated[
        str, typer.Option(help="clear | potential_match | confirmed_match; screening may raise it.")
    ] = "clear",
) -> None:
    """Add a customer (screened against GATEWAY_SANCTIONS_LIST when set)."""
    raw = {
        "id": id, "name": name, "kind": kind, "citizenships": citizenship or [],
        "residence": residence, "incorporated_in": incorporated_in,
        "ownership": _ownership(owner, ownership), "kyc_level": kyc_level,
        "kyc_expires_at": kyc_expires_at, "tier": tier, "attributes": attribute or [],
        "sanctions_status": sanctions_status,
    }  # fmt: skip
    try:
        data = CustomerCreate.model_validate(raw)
    except ValidationError as exc:
        raise fail(validation_message(exc), 2) from exc
    settings = db_settings()
    check_names(data.model_dump(include={"kyc_level", "tier"}), settings)
    screener = cli_screener(settings)

    async def work(settings: Settings, sessions: Sessions) -> CustomerOut | None:
        async with sessions() as session:
            try:
                row = await service.create_customer(
                    session, data, cli_actor(), screener, datetime.now(UTC)
                )
            except service.CustomerExists:
                return None
            await session.commit()
            return service.to_out(row)

    record = run_db(work, create=True)
    if record is None:
        raise fail(f"customer {data.id!r} already exists")
    console.print(render(record))


# From the record's own Literal, so the choices cannot drift from what is stored.
StatusChoice = Enum("StatusChoice", {v: v for v in get_args(CustomerStatus)}, type=str)  # type: ignore[misc]
SanctionsChoice = Enum("SanctionsChoice", {v: v for v in get_args(SanctionsStatus)}, type=str)  # type: ignore[misc]


@app.command("update")
def update(
    customer_id: str,
    owner: Annotated[list[str] | None, typer.Option(help="COUNTRY:PERCENT; repeatable.")] = None,
    ownership: Annotated[
        str | None, typer.Option(help="The ownership list as JSON (chains: see `add`).")
    ] = None,
) -> None:
    """Replace a customer's ownership (the admin API's PATCH changes any field).
    New owner names are screened against GATEWAY_SANCTIONS_LIST."""
    if owner is None and ownership is None:
        raise fail("nothing to change: give --owner or --ownership", 2)
    try:
        patch = CustomerPatch.model_validate({"ownership": _ownership(owner, ownership)})
    except ValidationError as exc:
        raise fail(validation_message(exc), 2) from exc
    record = _apply_patch(customer_id, patch, cli_screener(db_settings()))
    console.print(render(record))


@app.command("list")
def list_(
    status: Annotated[
        StatusChoice | None, typer.Option(help="Only customers with this status.")
    ] = None,
    sanctions_status: Annotated[
        SanctionsChoice | None,
        typer.Option(help="Only customers with this screening status (the held: potential_match)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=service.MAX_PAGE)] = 100,
    cursor: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the page as the admin API does, as JSON.")
    ] = False,
) -> None:
    """List customers (keyset pages; pass the printed cursor for the next page)."""

    async def work(_: Settings, sessions: Sessions) -> tuple[list[CustomerOut], str | None]:
        async with sessions() as session:
            wanted = None if status is None else status.value
            screened = None if sanctions_status is None else sanctions_status.value
            rows, nxt = await service.list_customers(session, cursor, limit, wanted, screened)
            return [service.to_out(r) for r in rows], nxt

    try:
        records, nxt = run_db(work)
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        page = {"items": [r.model_dump(mode="json") for r in records], "next_cursor": nxt}
        print(json.dumps(page, indent=2))
        return
    table = Table()
    # Ids are what the other commands take: never cut to fit a narrow terminal.
    table.add_column("id", no_wrap=True, min_width=max((len(r.id) for r in records), default=2))
    for name in ("name", "kind", "tier", "kyc_level", "kyc_expires_at", "sanctions", "status"):
        table.add_column(name)
    for r in records:
        expires = r.kyc_expires_at.isoformat() if r.kyc_expires_at else ""
        cells = (r.id, r.name, r.kind, r.tier, r.kyc_level, expires, r.sanctions_status, r.status)
        table.add_row(*(escape(c) for c in cells))
    out = table_console()
    out.print(table)
    if nxt:
        out.print(f"next cursor: {nxt}", markup=False)


def _get(customer_id: str) -> CustomerOut | None:
    async def work(_: Settings, sessions: Sessions) -> CustomerOut | None:
        async with sessions() as session:
            try:
                return service.to_out(await service.get_customer(session, customer_id))
            except service.CustomerNotFound:
                return None

    return run_db(work)


@app.command("show")
def show(customer_id: str) -> None:
    """Show one customer record."""
    record = _get(customer_id)
    if record is None:
        raise fail(f"customer {customer_id!r} not found")
    table_console().print(render(record))


@app.command("suspend")
def suspend(
    customer_id: str,
    undo: Annotated[bool, typer.Option("--undo", help="Reactivate instead.")] = False,
) -> None:
    """Suspend a customer (every request is then denied); `activate` undoes it."""
    _set_status(customer_id, "active" if undo else "suspended")


@app.command("activate")
def activate(customer_id: str) -> None:
    """Reactivate a suspended customer (the admin API's PATCH with status "active")."""
    _set_status(customer_id, "active")


def _set_status(customer_id: str, status: CustomerStatus) -> None:
    record = _apply_patch(customer_id, CustomerPatch(status=status), None)
    console.print(f"customer {record.id} is now {record.status}", markup=False)


def _apply_patch(customer_id: str, patch: CustomerPatch, screener: Screener | None) -> CustomerOut:
    """Apply ``patch`` as the admin API's PATCH does (history, admin action,
    screening when ``screener`` is given); exit 1 when the customer is unknown."""

    async def work(_: Settings, sessions: Sessions) -> CustomerOut | None:
        async with sessions() as session:
            try:
                row = await service.update_customer(
                    session, customer_id, patch, cli_actor(), screener, datetime.now(UTC)
                )
            except service.CustomerNotFound:
                return None
            await session.commit()
            return service.to_out(row)

    record = run_db(work)
    if record is None:
        raise fail(f"customer {customer_id!r} not found")
    return record
