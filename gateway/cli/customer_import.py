"""`gateway customers import FILE`: many customer records at once, all or none.

The file is checked whole first (``gateway.kyc.bulk``): any bad line, and
nothing is written (exit 2). Then, in one transaction, every record is
created and screened as ``customers add`` does; an id that already exists
refuses the whole file (exit 1) unless ``--skip-existing``. ``--dry-run`` does
all of that and rolls back, so the summary says who would be held for a
sanctions review before anyone is created.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.cli.db_command import (
    Sessions,
    bundle_vocabulary,
    cli_actor,
    cli_screener,
    console,
    db_settings,
    err,
    fail,
    run_db,
)
from gateway.kyc import service
from gateway.kyc.bulk import ImportFile, read_import
from gateway.kyc.screening import Screener
from gateway.settings import Settings

MAX_PROBLEMS_SHOWN = 100
MAX_IDS_SHOWN = 50
_EXPUNGE_EVERY = 1000
"""Records between flushes that empty the session: a 100k-line file must not
keep 100k ORM objects in memory until the commit."""


@dataclass(slots=True)
class Outcome:
    created: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def register(customers_app: typer.Typer) -> None:
    customers_app.command("import")(import_customers)


def import_customers(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON Lines: one customer record per line, as POST /admin/v1/customers "
            "takes (blank lines skipped); - reads standard input."
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and screen every record; keep none.")
    ] = False,
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing",
            help="Leave customers whose id already exists as they are (default: refuse the file).",
        ),
    ] = False,
) -> None:
    """Add many customers from a JSON Lines file, all or none, each screened like `add`."""
    settings = db_settings()
    lines = _read_lines(file)
    vocab = bundle_vocabulary(settings)
    if isinstance(vocab, str):
        err.print(f"warning: kyc_level and tier not checked: {vocab}", markup=False)
    parsed = read_import(lines, None if isinstance(vocab, str) else vocab)
    if parsed.problems:
        _report_problems(parsed)
        raise typer.Exit(2)
    screener = cli_screener(settings)
    if screener is None:
        err.print("warning: no sanctions list loaded (GATEWAY_SANCTIONS_LIST): records are "
                  "stored with the sanctions_status they carry, unscreened", markup=False)

    async def work(_: Settings, sessions: Sessions) -> Outcome:
        outcome = Outcome()
        async with sessions() as session:
            try:
                await _create_all(session, parsed, screener, skip_existing, outcome)
            except IntegrityError as exc:
                # Ids were checked free in this transaction; another writer took
                # one meanwhile (or the file's generated ids collided).
                await session.rollback()
                raise fail(f"nothing was imported: a record conflicts with one stored "
                           f"meanwhile ({exc.orig}); run the import again", 1) from None
            if outcome.conflicts or dry_run:
                await session.rollback()
            else:
                await session.commit()
        return outcome

    outcome = run_db(work, create=True)
    if outcome.conflicts:
        for line in outcome.conflicts[:MAX_PROBLEMS_SHOWN]:
            err.print(line, markup=False, soft_wrap=True)
        raise fail(
            f"{len(outcome.conflicts)} customers already exist; nothing was imported "
            "(--skip-existing leaves them as they are and imports the rest)",
            1,
        )
    _summarise(outcome, dry_run)


async def _create_all(
    session: AsyncSession,
    parsed: ImportFile,
    screener: Screener | None,
    skip_existing: bool,
    outcome: Outcome,
) -> None:
    """Create every record not already stored (conflicts noted, not raised)."""
    now = datetime.now(UTC)
    actor = cli_actor()
    ids = [item.record.id for item in parsed.records if item.record.id is not None]
    existing = await service.existing_customer_ids(session, ids)
    for item in parsed.records:
        cid = item.record.id
        if cid is not None and cid in existing:
            if skip_existing:
                outcome.skipped.append(cid)
            else:
                outcome.conflicts.append(f"line {item.line}: customer {cid!r} already exists")
            continue
        row = await service.create_customer(
            session, item.record, actor, screener, now, warn_unscreened=False, known_new=True
        )
        outcome.created.append(row.id)
        if row.sanctions_status != "clear" and item.record.sanctions_status == "clear":
            outcome.held.append(row.id)
        if len(outcome.created) % _EXPUNGE_EVERY == 0:
            await session.flush()
            session.expunge_all()
    await session.flush()


def _read_lines(file: Path) -> list[str]:
    if str(file) == "-":
        return sys.stdin.read().splitlines()
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {file}: {exc}", 2) from None


def _report_problems(parsed: ImportFile) -> None:
    for problem in parsed.problems[:MAX_PROBLEMS_SHOWN]:
        err.print(problem, markup=False, soft_wrap=True)
    more = len(parsed.problems) - MAX_PROBLEMS_SHOWN
    if more > 0:
        err.print(f"... and {more} more", markup=False)
    err.print(f"{len(parsed.problems)} problems in the file; nothing was imported", markup=False)


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_SHOWN])
    return shown + (f" and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else "")


def _summarise(outcome: Outcome, dry_run: bool) -> None:
    verb, held = ("would import", "would be held") if dry_run else ("imported", "held")
    console.print(f"{verb} {len(outcome.created)} customers", markup=False, soft_wrap=True)
    if outcome.held:
        console.print(
            f"{len(outcome.held)} {held} as potential_match: {_ids(outcome.held)} "
            "(served as public until a compliance review clears them)",
            markup=False,
            soft_wrap=True,
        )
    if outcome.skipped:
        console.print(f"skipped {len(outcome.skipped)} existing: {_ids(outcome.skipped)}",
                      markup=False, soft_wrap=True)
