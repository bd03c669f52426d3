"""`gateway tokens` commands: admin-API bearer tokens with a role.

``list`` and ``revoke`` are the admin API's ``DELETE /tokens/{id}`` on the
database (``gateway.admin.tokens``): a revocation reaches every running
gateway within ``GATEWAY_CHANGE_POLL_SECONDS``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gateway.admin.auth import ROLES, TOKEN_KIND, create_admin_token
from gateway.admin.tokens import TokenNotFound, list_admin_tokens, revoke_admin_token, token_view
from gateway.cli.db_command import Sessions, cli_actor, console, fail, run_db, table_console
from gateway.identity.admin_log import record_admin_action
from gateway.identity.secrets import credential_id
from gateway.kyc.schemas import non_blank
from gateway.settings import Settings

app = typer.Typer(no_args_is_help=True)


@app.callback()
def tokens() -> None:
    """Admin-API tokens with roles."""


@app.command("create")
def create(
    role: Annotated[str, typer.Option(help="admin | compliance | auditor")],
    name: Annotated[str, typer.Option(help="Who or what holds the token.")] = "cli",
) -> None:
    """Create an admin-API token. The token is printed once and never again."""
    if role not in ROLES:
        raise fail(f"--role must be one of {', '.join(ROLES)}", 2)
    try:  # as the admin API's POST /tokens: the name says who holds the token
        non_blank(name)
    except ValueError as exc:
        raise fail(f"--name: {exc}", 2) from exc

    async def work(_: Settings, sessions: Sessions) -> tuple[str, str]:
        now = datetime.now(UTC)
        async with sessions() as session:
            row, clear = await create_admin_token(session, role, name, now)
            await session.flush()
            record_admin_action(session, cli_actor(), "token.create", "admin_token", row.id,
                                None, {"id": row.id, "role": role, "name": name}, now)  # fmt: skip
            await session.commit()
            return row.id, clear

    # The first admin token may come before the first `serve`: this may create the database.
    token_id, clear = run_db(work, create=True)
    console.print(f"token id: {token_id} (role {role})")
    console.print(f"token:    {clear}", soft_wrap=True)
    console.print("[yellow]Store it now: it is not shown again.[/yellow]")


@app.command("list")
def list_(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the tokens as JSON, as the admin API shows one.")
    ] = False,
) -> None:
    """List admin-API tokens, revoked ones included (never their secrets)."""

    async def work(_: Settings, sessions: Sessions) -> list[dict[str, Any]]:
        async with sessions() as session:
            return [token_view(row) for row in await list_admin_tokens(session)]

    views = run_db(work)
    if as_json:
        print(json.dumps({"items": views}, indent=2))
        return
    table = Table()
    table.add_column("id", no_wrap=True)  # what `tokens revoke` takes: never cut
    for name in ("role", "name", "created_at", "revoked_at"):
        table.add_column(name)
    for view in views:
        table.add_row(*(escape(view[c] or "") for c in ("id", "role", "name", "created_at",
                                                        "revoked_at")))  # fmt: skip
    table_console().print(table)


@app.command("revoke")
def revoke(
    token: Annotated[str, typer.Argument(help="The token id, gat_<id>, or the whole token.")],
) -> None:
    """Revoke an admin-API token (running gateways refuse it within GATEWAY_CHANGE_POLL_SECONDS)."""
    token_id = credential_id(TOKEN_KIND, token)
    if token_id is None:
        # Never echoed: it may be some other credential, secret included.
        raise fail("expected a token id, gat_<id>, or the whole gat_<id>_<secret> token", 2)

    async def work(_: Settings, sessions: Sessions) -> dict[str, Any] | None:
        async with sessions() as session:
            try:
                row = await revoke_admin_token(session, token_id, cli_actor(), datetime.now(UTC))
            except TokenNotFound:
                return None
            await session.commit()
            return token_view(row)

    view = run_db(work)
    if view is None:
        raise fail(f"token {token_id!r} not found")
    console.print(f"token {token_id} revoked at {view['revoked_at']}", markup=False)
