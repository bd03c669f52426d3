"""`gateway tokens` commands: admin-API bearer tokens with a role."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from gateway.admin.auth import ROLES, create_admin_token
from gateway.cli.customers import Sessions, cli_actor, console, fail, run_db
from gateway.identity.admin_log import record_admin_action
from gateway.kyc.schemas import non_blank
from gateway.settings import Settings

app = typer.Typer(no_args_is_help=True)


@app.callback()
def tokens() -> None:
    """Admin-API tokens with roles (a group even with one command, so `tokens create` works)."""


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
