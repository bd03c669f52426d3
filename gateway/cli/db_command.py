"""What every CLI command that works on GATEWAY_DATABASE_URL directly shares.

The settings it needs, the admin it acts as (``cli:<user>``), the database run
(migrated to head on SQLite), the bundle's names and the sanctions list it
checks against, and its exits: 1 not found / refused, 2 usage error.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminActor
from gateway.cli.database import CREATE_HINT, new_sqlite_file, require_existing
from gateway.cli.messages import error, note, piped_width
from gateway.db.errors import SchemaOutOfDate
from gateway.db.session import create_engine, session_factory
from gateway.kyc.schemas import validation_problems
from gateway.kyc.screening import SanctionsListError, Screener, load_screener
from gateway.kyc.vocabulary import Vocabulary, unknown_names, vocabulary
from gateway.settings import Settings, SettingsError, load_settings

console = Console(emoji=False)  # ":word:" in a name or message stays as typed
err = Console(stderr=True, emoji=False)


def table_console() -> Console:
    """A console for tables, built per command: piped or redirected, as wide as
    the table (``messages.piped_width``), since rich's 80 columns cut ids with
    an ellipsis or squeezed whole columns out of a ``customers list``."""
    return Console(emoji=False, width=piped_width())
T = TypeVar("T")

Sessions = async_sessionmaker[AsyncSession]


def cli_actor() -> AdminActor:
    return AdminActor(name=f"cli:{getpass.getuser()}", role="admin", token_id=None)


def db_settings() -> Settings:
    # Only the database (and sanctions list) settings matter here; demo=True
    # waives the upstream URL a serving gateway needs.
    try:
        return load_settings(demo=True)
    except SettingsError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc


def bundle_vocabulary(settings: Settings) -> Vocabulary | str:
    """The KYC levels and tiers of the bundle in GATEWAY_POLICY_DIR, or why it
    cannot be read (the CLI then skips the check rather than refuse to work)."""
    from gateway.policy.loader import load_dir  # only for commands that write names

    result = load_dir(settings.policy_dir)
    if not result.ok or result.bundle is None:
        first = result.errors[0] if result.errors else "no bundle"
        return f"policy bundle {settings.policy_dir} cannot be loaded ({first})"
    return vocabulary(result.bundle.kyc_levels, result.bundle.tiers)


def check_names(values: dict[str, Any], settings: Settings) -> None:
    """Exit 2 naming the option when a KYC level or tier is not in the bundle."""
    vocab = bundle_vocabulary(settings)
    if isinstance(vocab, str):
        err.print(f"warning: --kyc-level and --tier not checked: {vocab}", markup=False)
        return
    unknown = unknown_names(values, vocab)
    if unknown:
        raise fail("; ".join(f"{u.field}: {u.message}" for u in unknown), 2)


def cli_screener(settings: Settings) -> Screener | None:
    """The configured sanctions list; one that cannot be loaded is a usage error
    (exit 2), checked before anything is written."""
    try:
        return load_screener(settings.sanctions_list, settings.sanctions_threshold)
    except SanctionsListError as exc:
        raise fail(str(exc), 2) from None


def run_db(work: Callable[[Settings, Sessions], Awaitable[T]], *, create: bool = False) -> T:
    """Run ``work`` against the configured database (migrated to head on SQLite;
    on PostgreSQL it must already be: ``gateway db upgrade``).

    A missing SQLite file is created only with ``create`` (commands that can
    bootstrap a fresh machine), and then said; otherwise it is a usage error
    (``gateway.cli.database``).
    """
    settings = db_settings()
    created = new_sqlite_file(settings) if create else None
    if not create:
        require_existing(settings, CREATE_HINT)

    async def main() -> T:
        from gateway.db.migrate import prepare_database  # Alembic, for this command only

        engine = create_engine(settings)
        try:
            await prepare_database(engine, settings)
            return await work(settings, session_factory(engine))
        except SchemaOutOfDate as exc:
            raise fail(str(exc), code=2) from None
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    finally:
        if created is not None and created.exists():
            note(err, f"created a new database at {created} (GATEWAY_DATABASE_URL); "
                 "if your gateway serves another one, check the path")


def fail(message: str, code: int = 1) -> typer.Exit:
    # Messages quote user input and validation patterns ([a-z]...): never markup.
    error(err, message)
    return typer.Exit(code)


def validation_message(exc: ValidationError) -> str:
    return "; ".join(validation_problems(exc))
