"""`gateway keys` commands: create (secret printed once) and revoke API keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from gateway.cli.customers import Sessions, cli_actor, console, fail, run_db
from gateway.identity.keys import (
    KEY_KIND,
    ExpiryInPast,
    KeyNotFound,
    check_expiry,
    create_api_key,
    key_snapshot,
    revoke_api_key,
)
from gateway.identity.secrets import credential_id
from gateway.kyc.schemas import UtcIn, non_blank
from gateway.settings import Settings

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(
    customer_id: str,
    expires_at: Annotated[str | None, typer.Option(help="RFC 3339 time.")] = None,
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
) -> None:
    """Create an API key for a customer. The key is printed once and never again."""
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

    async def work(_: Settings, sessions: Sessions) -> tuple[str, str] | None:
        async with sessions() as session:
            try:
                row, clear = await create_api_key(
                    session, customer_id, cli_actor(), datetime.now(UTC), expiry, name
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
