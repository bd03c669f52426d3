"""``gateway db``: Alembic migrations."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from gateway.db.session import create_engine
from gateway.settings import SettingsError, load_settings

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command()
def upgrade() -> None:
    """Migrate the database named by GATEWAY_DATABASE_URL to the latest schema."""
    try:
        settings = load_settings(demo=True)  # no upstream needed to migrate
    except SettingsError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None

    from gateway.db import migrate  # Alembic: loaded only by the db commands

    async def run() -> str | None:
        engine = create_engine(settings)
        try:
            await migrate.upgrade(engine)
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    try:
        revision = asyncio.run(run())
    except (OSError, SQLAlchemyError) as exc:
        # Unreachable server, refused login, unwritable file: one line, not a traceback.
        problem = escape(_first_line(exc))
        console.print(f"[red]GATEWAY_DATABASE_URL: cannot migrate: {problem}[/red]")
        raise typer.Exit(1) from None
    console.print(f"database at revision {revision}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _revisions() -> tuple[str | None, str | None]:
    """(the database's revision, the migrations' head); exit 1 with one line
    when the database cannot be read (`gateway serve` relays this output)."""
    try:
        settings = load_settings(demo=True)
    except SettingsError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    from gateway.db import migrate  # Alembic: loaded only by the db commands

    async def run() -> str | None:
        engine = create_engine(settings)
        try:
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    try:
        current = asyncio.run(run())
    except (OSError, SQLAlchemyError) as exc:
        # A wrong password, a server not up yet: one line, as `db upgrade` says it.
        problem = escape(_first_line(exc))
        console.print(f"[red]GATEWAY_DATABASE_URL: cannot read the schema revision: "
                      f"{problem}[/red]")  # fmt: skip
        raise typer.Exit(1) from None
    return current, migrate.head_revision()


@app.command()
def current() -> None:
    """Print the database's current revision and the head revision."""
    current, head = _revisions()
    console.print(f"current: {current}  head: {head}")


@app.command()
def check() -> None:
    """Exit 0 if the database is at the head revision, 1 if not (what replicas check)."""
    current, head = _revisions()
    if current != head:
        console.print(
            f"database schema is at revision {current!r}, the gateway needs {head!r}: "
            "run `gateway db upgrade` once before starting the replicas"
        )
        raise typer.Exit(1)
    console.print(f"database at head revision {head}")
