"""`gateway policy` commands: validate, test, diff, impact, schema.

Exit codes (SPEC section 1): 0 ok, 1 the thing checked failed (invalid bundle,
failing policy test), 2 usage error (missing directory, bad option).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gateway.cli.messages import piped_width
from gateway.policy.compiled import compile_bundle
from gateway.policy.coverage import coverage_line
from gateway.policy.diff import diff_bundles
from gateway.policy.loader import LoadResult, load_dir
from gateway.policy.schema import json_schema
from gateway.policy.testing import run_tests
from gateway.policy.timing import parse_duration as duration
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
def validate(
    directory: DirArg,
    check_customers: Annotated[
        bool,
        typer.Option(
            "--check-customers",
            help="Also warn about customer_in ids (licences...) that no customer record in "
            "GATEWAY_DATABASE_URL holds (read only; a missing database is exit 2).",
        ),
    ] = False,
    check_geolocation: Annotated[
        bool,
        typer.Option(
            "--check-geolocation",
            help="Also warn when origin rules name regions (UA-43...) that the geolocation "
            "of GATEWAY_GEOIP_DB cannot give (unset, or a Country database: countries only).",
        ),
    ] = False,
) -> None:
    """Check a bundle: every error with file, line and field; exit 1 if any."""
    console = _console()
    result = _load(console, directory)
    b = result.bundle
    assert b is not None
    if check_customers:
        from gateway.cli.policy_customers import warn_unknown_customers

        warn_unknown_customers(console, b)
    if check_geolocation:
        from gateway.cli.policy_geolocation import warn_region_blind

        warn_region_blind(console, b)
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


def parse_duration(text: str) -> timedelta:
    try:
        return duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def schema() -> None:
    """Print the JSON Schema of a policy bundle file."""
    typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))
