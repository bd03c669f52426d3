"""`gateway policy` commands: validate, test, diff, impact, schema.

Exit codes (SPEC section 1): 0 ok, 1 the thing checked failed (invalid bundle,
failing policy test), 2 usage error (missing directory, bad option).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from gateway.cli.impact_report import print_impact
from gateway.cli.messages import piped_width
from gateway.policy.compiled import CompiledBundle, compile_bundle
from gateway.policy.coverage import coverage_line
from gateway.policy.diff import diff_bundles
from gateway.policy.impact import impact
from gateway.policy.loader import LoadResult, load_dir
from gateway.policy.schema import json_schema
from gateway.policy.testing import run_tests
from gateway.policy.timing import window_state

app = typer.Typer(no_args_is_help=True)

DirArg = Annotated[Path, typer.Argument(help="Policy bundle directory.")]


def _console() -> Console:
    # Built per command so test runners that swap stdout see the output.
    return Console(highlight=False, soft_wrap=True, emoji=False, width=piped_width())


def _e(value: object) -> str:
    # Bundle text (names, regexes, test names, error messages quoting them) and
    # paths go through rich markup: '[bold]' would vanish and '[/x]' would raise
    # MarkupError. Everything user-written is escaped where it is formatted.
    return escape(str(value))


def _require_dir(console: Console, path: Path) -> None:
    if not path.is_dir():
        console.print(f"[red]error:[/red] {_e(path)}: no such directory")
        raise typer.Exit(2)


def _load(console: Console, path: Path, show_ok: bool = True) -> LoadResult:
    _require_dir(console, path)
    result = load_dir(path)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {_e(warning)}")
    if not result.ok:
        for error in result.errors:
            console.print(f"[red]error:[/red] {_e(error)}")
        console.print(f"[red]{_e(path)}: invalid policy bundle ({len(result.errors)} errors)[/red]")
        raise typer.Exit(1)
    if show_ok:
        console.print(
            f"[green]{_e(path)}: valid[/green] version {result.version} ({len(result.files)} files)"
        )
    return result


@app.command()
def validate(directory: DirArg) -> None:
    """Check a bundle: every error with file, line and field; exit 1 if any."""
    console = _console()
    result = _load(console, directory)
    b = result.bundle
    assert b is not None
    console.print(
        f"  {len(b.country_groups)} country groups, {len(b.tiers)} tiers, "
        f"{len(b.models)} models, {len(b.capabilities)} capabilities, "
        f"{len(b.rules)} rules"
    )
    reported = [r.id for r in b.rules if r.mode == "report"]
    if reported:
        # Staged rules: valid, evaluated and logged, but deciding nothing yet.
        console.print(f"  report mode (logged, not enforced): {_e(', '.join(reported))}")
    now = datetime.now(UTC)
    for rule in b.rules:
        # The officer's check of the instant written: in UTC, and where it stands now.
        window = rule.effective
        if window is None or (window.from_ is None and window.until is None):
            continue
        span = " ".join(
            f"{name} {value.isoformat().replace('+00:00', 'Z')}"
            for name, value in (("from", window.from_), ("until", window.until))
            if value is not None
        )
        state = window_state(window.from_, window.until, now).replace("_", " ")
        gone = ": it decides nothing any more" if state == "ended" else ""
        console.print(f"  timed: {_e(rule.id)} {span} ({state} now{gone})", markup=False)


@app.command("test")
def test_cmd(
    directory: DirArg, verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False
) -> None:
    """Run the bundle's tests/*.yaml cases through the engine; exit 1 on any failure."""
    console = _console()
    result = _load(console, directory, show_ok=False)
    assert result.bundle is not None and result.version is not None
    bundle = compile_bundle(result.bundle, result.version)
    results = run_tests(directory, bundle)
    failed = [r for r in results if not r.passed]
    for r in results:
        if r.passed and not verbose:
            continue
        where = f"{r.file}:{r.line}" if r.line else r.file
        mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
        detail = f"\n     {_e(r.detail)}" if r.detail else ""
        console.print(f"{mark} {_e(where)} {_e(r.name)}{detail}")
    if not results:
        console.print(f"[yellow]no policy tests in {_e(directory / 'tests')}[/yellow]")
    summary = f"{len(results) - len(failed)} passed, {len(failed)} failed"
    console.print(f"[{'red' if failed else 'green'}]{summary}[/] (policy {result.version[:12]})")
    if results:
        console.print(coverage_line(directory, bundle, results))
    if failed:
        raise typer.Exit(1)


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The bundle in force.")],
    new: Annotated[Path, typer.Argument(help="The candidate bundle.")],
) -> None:
    """What changes between two bundles, in words a reviewer reads."""
    console = _console()
    a = _load(console, old, show_ok=False)
    b = _load(console, new, show_ok=False)
    assert a.bundle is not None and b.bundle is not None
    changes = diff_bundles(a.bundle, b.bundle)
    console.print(
        f"{old} ({(a.version or '')[:12]}) -> {new} ({(b.version or '')[:12]})", markup=False
    )
    if not changes:
        console.print("no changes")
        return
    colors = {"added": "green", "removed": "red", "changed": "yellow"}
    for change in changes:
        console.print(
            f"[{colors[change.kind]}]{change.section}: {change.kind}[/] {_e(change.name)}"
        )
        for detail in change.details:
            # A mode change (report <-> enforce) is the line a reviewer must not miss.
            style = "bold red" if detail.startswith("now ") else None
            console.print(f"    {detail}", markup=False, style=style)


_DURATION = re.compile(r"^(\d+)([smhdw])$")


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"'{text}': use a number and s, m, h, d or w, e.g. 7d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
    return timedelta(**{unit: int(match[1])})


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


@app.command("impact")
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


@app.command()
def schema() -> None:
    """Print the JSON Schema of a policy bundle file."""
    typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))
