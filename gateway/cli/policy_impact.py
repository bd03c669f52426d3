"""`gateway policy impact`: replay recorded decisions (or judge every customer
record, ``--customers``) against a candidate bundle. Registered on the
``gateway policy`` app by ``gateway.cli.main``; the report is printed by
``impact_report.py`` (and ``exposure_report.py`` for ``--customers``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from gateway.cli.impact_report import print_impact
from gateway.cli.policy import DirArg, _console, _e, _load, parse_duration
from gateway.policy.compiled import CompiledBundle, compile_bundle
from gateway.policy.impact import impact


def register(app: typer.Typer) -> None:
    app.command("impact")(impact_cmd)


def _read_jsonl(path: Path) -> Iterable[Mapping[str, Any]]:
    from gateway.audit.ownership_snapshots import inline_tree, manifest_trees

    trees = manifest_trees(path)  # the trees records name by digest, if it has a manifest
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                item = json.loads(line)
                if item.get("kind", "decision") in ("decision", "policy_reload"):
                    inline_tree(item, trees)
                    yield item


async def _from_audit(since: datetime) -> list[Mapping[str, Any]]:
    """Recorded decisions since ``since`` from the audit log in GATEWAY_DATABASE_URL."""
    from gateway.audit import query  # provided by the audit package
    from gateway.db.session import create_engine, session_factory
    from gateway.settings import Settings

    settings = Settings(demo=True)  # only the database URL is needed here
    engine = create_engine(settings)
    try:
        sessions = session_factory(engine)
        stream: AsyncIterator[Mapping[str, Any]] = query.iter_replay_facts(sessions, since)
        return [item async for item in stream] + await query.policy_reloads(sessions, since)
    finally:
        await engine.dispose()


def _missing_sqlite_file() -> Path | None:
    """The SQLite file GATEWAY_DATABASE_URL names, if it does not exist.

    Connecting would create it: an empty ./gateway.db left behind by a
    read-only command, which the next `gateway serve` would then adopt.
    """
    from sqlalchemy.engine import make_url

    from gateway.settings import Settings

    url = make_url(Settings(demo=True).database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database)
    return None if path.exists() else path


def impact_cmd(
    directory: DirArg,
    since: Annotated[str, typer.Option(help="How far back: 30m, 12h, 7d, 2w.")] = "7d",
    at: Annotated[
        str | None,
        typer.Option(help="Re-decide at this RFC 3339 instant instead of each record's own time."),
    ] = None,
    from_jsonl: Annotated[
        Path | None,
        typer.Option(
            "--from-jsonl",
            help="Read records from a `gateway audit export --format jsonl` "
            "file instead of the database.",
        ),
    ] = None,
    customers: Annotated[
        bool,
        typer.Option(
            "--customers",
            help="Judge every customer record instead of recorded traffic: who loses "
            "(or gains) a model at --at (default now), against --against or the candidate now.",
        ),
    ] = False,
    against: Annotated[
        Path | None,
        typer.Option(help="With --customers: the bundle to compare with (the one in force)."),
    ] = None,
) -> None:
    """Replay recorded decisions against a candidate bundle and count the flips."""
    console = _console()
    window = parse_duration(since)
    try:
        at_dt = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None
    except ValueError as exc:
        raise typer.BadParameter(f"--at: {exc}") from None
    if at_dt is not None and at_dt.tzinfo is None:
        raise typer.BadParameter("--at: needs a time zone, e.g. 2026-06-13T06:00:00Z")
    result = _load(console, directory, show_ok=False)
    assert result.bundle is not None and result.version is not None
    bundle = compile_bundle(result.bundle, result.version)
    if customers:
        _customers_impact(console, bundle, at_dt, against)
        return
    cutoff = datetime.now(UTC) - window
    records: Iterable[Mapping[str, Any]]
    if from_jsonl is not None:
        if not from_jsonl.is_file():
            console.print(f"[red]error:[/red] {_e(from_jsonl)}: no such file")
            raise typer.Exit(2)
        records = (
            r
            for r in _read_jsonl(from_jsonl)
            if "ts" not in r
            or datetime.fromisoformat(str(r["ts"]).replace("Z", "+00:00")) >= cutoff
        )
    else:
        missing = _missing_sqlite_file()
        if missing is not None:
            console.print(
                f"[red]error:[/red] no audit database at {_e(missing)} (GATEWAY_DATABASE_URL); "
                "use --from-jsonl with `gateway audit export --format jsonl`"
            )
            raise typer.Exit(2)
        try:
            records = asyncio.run(_from_audit(cutoff))
        except (SQLAlchemyError, OSError) as exc:  # asyncpg's connect errors are OSErrors
            console.print(
                f"[red]error:[/red] cannot read the audit log in GATEWAY_DATABASE_URL "
                f"({type(exc).__name__}: {_e(str(exc).splitlines()[0])}); "
                "run `gateway db upgrade`?"
            )
            raise typer.Exit(2) from None
        except (ImportError, AttributeError) as exc:
            console.print(
                f"[red]error:[/red] reading the audit log is not available ({_e(exc)}); "
                "use --from-jsonl with `gateway audit export --format jsonl`"
            )
            raise typer.Exit(2) from None
    console.print(
        f"candidate {directory} ({result.version[:12]}), decisions since {since}", markup=False
    )
    print_impact(console, impact(records, bundle, at_dt), result.version)


def _customers_impact(
    console: Console, bundle: CompiledBundle, at: datetime | None, against: Path | None
) -> None:
    from gateway.cli.exposure_report import print_exposure

    baseline = None
    if against is not None:
        old = _load(console, against, show_ok=False)
        assert old.bundle is not None and old.version is not None
        baseline = compile_bundle(old.bundle, old.version)
    missing = _missing_sqlite_file()
    if missing is not None:
        console.print(f"[red]error:[/red] no database at {_e(missing)} (GATEWAY_DATABASE_URL)")
        raise typer.Exit(2)
    now = datetime.now(UTC)
    try:
        print_exposure(console, bundle, at or now, baseline, now)
    except (SQLAlchemyError, OSError) as exc:
        console.print(
            f"[red]error:[/red] cannot read the customers in GATEWAY_DATABASE_URL "
            f"({type(exc).__name__}: {_e(str(exc).splitlines()[0])})"
        )
        raise typer.Exit(2) from None


