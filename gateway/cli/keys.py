"""`gateway keys` commands: create (secret printed once), list and revoke API keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from rich.markup import escape
from rich.table import Column, Table

from gateway.cli.db_command import (
    Sessions,
    cli_actor,
    console,
    db_settings,
    err,
    fail,
    run_db,
    table_console,
)
from gateway.identity.keys import (
    KEY_KIND,
    ExpiryInPast,
    KeyNotFound,
    check_expiry,
    create_api_key,
    customer_keys,
    key_snapshot,
    revoke_api_key,
)
from gateway.identity.secrets import credential_id
from gateway.kyc.schemas import UtcIn, non_blank
from gateway.policy.key_scope import unknown_scope_names
from gateway.settings import Settings

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(
    customer_id: str,
    expires_at: Annotated[str | None, typer.Option(help="RFC 3339 time.")] = None,
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(help="Only this model (repeatable); default: every model the tier allows."),
    ] = None,
    capability: Annotated[
        list[str] | None,
        typer.Option(help="Only requests with these capabilities (repeatable); default: any."),
    ] = None,
) -> None:
    """Create an API key for a customer. The key is printed once and never again.

    --model and --capability narrow the key below the customer's tier (a CI
    key for one model, a chat key without agentic use); they never widen it."""
    expiry = None
    if expires_at is not None:
        try:
            expiry = TypeAdapter(UtcIn).validate_python(expires_at)
            check_expiry(expiry, datetime.now(UTC))
        except ValidationError as exc:
            raise fail(f"--expires-at: {exc.errors()[0]['msg']}", 2) from exc
        except ExpiryInPast as exc:
            raise fail(f"--expires-at: {exc}", 2) from exc
    if name is not None:
        try:
            non_blank(name)
        except ValueError as exc:
            raise fail(f"--name: {exc}", 2) from exc

    models = sorted(set(model)) if model else None
    capabilities = sorted(set(capability)) if capability else None
    if models or capabilities:
        _check_scope(models, capabilities)

    async def work(_: Settings, sessions: Sessions) -> tuple[str, str] | None:
        async with sessions() as session:
            try:
                row, clear = await create_api_key(
                    session, customer_id, cli_actor(), datetime.now(UTC), expiry, name,
                    models, capabilities,
                )
            except LookupError:
                return None
            await session.commit()
            return row.id, clear

    made = run_db(work)
    if made is None:
        raise fail(f"customer {customer_id!r} not found")
    console.print(f"key id: {made[0]}")
    console.print(f"key:    {made[1]}", soft_wrap=True)
    console.print("[yellow]Store it now: it is not shown again.[/yellow]")


def _check_scope(models: list[str] | None, capabilities: list[str] | None) -> None:
    """Exit 2 on a name the bundle in GATEWAY_POLICY_DIR does not define (when
    that bundle cannot be loaded, say so and go on, as ``customers add`` does)."""
    from gateway.policy.loader import load_dir  # only when a scope is given

    settings = db_settings()
    result = load_dir(settings.policy_dir)
    if not result.ok or result.bundle is None:
        err.print(f"warning: --model and --capability not checked: policy bundle "
                  f"{settings.policy_dir} cannot be loaded", markup=False)
        return
    bundle = result.bundle
    problems = unknown_scope_names(models, capabilities, bundle.models, bundle.capabilities)
    if problems:
        options = {"allowed_models": "--model", "allowed_capabilities": "--capability"}
        raise fail("; ".join(f"{options[f]}: {m}" for f, m in problems.items()), 2)


@app.command("list")
def list_(
    customer_id: str,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the page as the admin API does, as JSON.")
    ] = False,
) -> None:
    """A customer's keys, revoked ones included (ids, names, scopes, times; never a secret)."""

    async def work(_: Settings, sessions: Sessions) -> list[dict[str, Any]] | None:
        async with sessions() as session:
            try:
                return [key_snapshot(row) for row in await customer_keys(session, customer_id)]
            except LookupError:
                return None

    found = run_db(work)
    if found is None:
        raise fail(f"customer {customer_id!r} not found")
    if as_json:
        console.print_json(json.dumps({"items": found, "next_cursor": None}))
        return
    # The id is what `keys revoke` takes: never cut to fit a narrow terminal.
    key_id = Column("id", no_wrap=True, min_width=max((len(k["id"]) for k in found), default=2))
    table = Table(key_id, "name", "created", "expires", "revoked", "last used", "models",
                  "capabilities")  # fmt: skip
    for k in found:
        table.add_row(*(escape(str(k[c] or "")) for c in ("id", "name", "created_at",
                                                          "expires_at", "revoked_at",
                                                          "last_used_at")),
                      escape(", ".join(k["allowed_models"] or ["(tier)"])),
                      escape(", ".join(k["allowed_capabilities"] or ["(any)"])))  # fmt: skip
    table_console().print(table)


@app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="The key id, gk_<id>, or the whole key.")],
) -> None:
    """Revoke an API key (running gateways refuse it within GATEWAY_CHANGE_POLL_SECONDS)."""
    key_id = credential_id(KEY_KIND, key)
    if key_id is None:
        # Never echoed: it may be some other credential, secret included.
        raise fail("expected a key id, gk_<id>, or the whole gk_<id>_<secret> key", 2)

    async def work(_: Settings, sessions: Sessions) -> dict[str, object] | None:
        async with sessions() as session:
            try:
                row = await revoke_api_key(session, key_id, cli_actor(), datetime.now(UTC))
            except KeyNotFound:
                return None
            await session.commit()
            return key_snapshot(row)

    snap = run_db(work)
    if snap is None:
        raise fail(f"key {key_id!r} not found")
    console.print(f"key {key_id} revoked at {snap['revoked_at']}", markup=False)
