"""``gateway serve``: run the gateway on uvicorn (uvloop, httptools).

With ``--workers N`` the workers share one metrics directory
(``PROMETHEUS_MULTIPROC_DIR``, emptied at start) so any worker's ``/metrics``
reports the whole process group. Logs are JSON lines on stderr
(``GATEWAY_LOG_JSON``). SIGTERM drains first (``gateway.ops.shutdown``), then
in-flight requests get ``--graceful-timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from gateway.cli.serve_rescreen import rescreen_at_start_up
from gateway.db.errors import SchemaOutOfDate
from gateway.db.startup import SCHEMA_READY_ENV, prepare_for_serving
from gateway.kyc.screening import SanctionsListError, Screener, load_screener
from gateway.settings import Settings, SettingsError, load_settings
from gateway.worker import exec_worker

console = Console(stderr=True)
_PACKAGE = Path(__file__).resolve().parents[1]


def bundled_policy_dir() -> Path:
    """The policy bundle shipped with the gateway.

    An installed wheel carries it as package data (``setup.py`` copies it
    there); an editable install or a source checkout has it beside the
    package, at the repository's top level.
    """
    installed = _PACKAGE / "bundled_policies"
    return installed if installed.is_dir() else _PACKAGE.parent / "policies"


def _demo_environment() -> None:
    """Embedded defaults for ``--demo``; anything the operator set explicitly wins."""
    os.environ["GATEWAY_DEMO"] = "true"
    if "GATEWAY_POLICY_DIR" not in os.environ and not Path("policies").is_dir():
        os.environ["GATEWAY_POLICY_DIR"] = str(bundled_policy_dir())
    os.environ.setdefault("GATEWAY_DATABASE_URL", "sqlite+aiosqlite:///./gateway.db")


async def _seed_demo(settings: Settings, screener: Screener | None) -> list[tuple[str, str, str]]:
    from gateway.db.session import create_engine, session_factory
    from gateway.demo.seed import seed_demo

    engine = create_engine(settings)
    try:
        customers = await seed_demo(session_factory(engine), screener)
    finally:
        await engine.dispose()
    return [(c.name, c.description, c.key) for c in customers]


def _print_demo(host: str, port: int, keys: list[tuple[str, str, str]], screened: bool) -> None:
    from rich.table import Table

    table = Table(title="Demo customers")
    table.add_column("customer")
    table.add_column("what it shows")
    for name, description, _ in keys:
        table.add_row(name, description)
    out = Console()
    out.print(table)
    # Keys on plain lines, never wrapped or cut by the table, so they copy cleanly.
    out.print("API keys (only a hash is stored; new keys are issued at each --demo start):")
    for name, _, key in keys:
        out.print(f"  {name}: {key}", soft_wrap=True, highlight=False)
    if not screened:
        out.print("No sanctions list loaded in demo mode: customers are not screened.")
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    key = keys[0][2] if keys else "gk_..."
    # python3, not python: where Python 3 is the system's, `python` may not exist.
    # The OpenAI SDK is not a dependency of the gateway (only of its tests).
    out.print(
        "\nTry it:\n"
        f"  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {key}' \\\n"
        "    -H 'content-type: application/json' \\\n"
        '    -d \'{"model": "haiku-lite", '
        """"messages": [{"role": "user", "content": "Hello"}]}'\n\n"""
        "  python3 -m pip install openai  # the OpenAI SDK, once\n"
        '  python3 -c "from openai import OpenAI; '
        f"c = OpenAI(base_url='{base}/v1', api_key='{key}'); "
        "print(c.chat.completions.create(model='haiku-lite', "
        "messages=[{'role': 'user', 'content': 'Hello'}]).choices[0].message.content)\"\n",
        soft_wrap=True,
    )


def _preflight(settings: Settings) -> str | None:
    """The first setting that only the workers' start-up would trip on, named.

    A worker that fails in its lifespan exits 3 with a traceback (and so does
    ``gateway serve``, with one worker or N: ``gateway.ops.startup_failures``).
    Files named by the settings are opened once here, so a bad one is exit 2
    naming the variable instead.
    """
    from gateway.audit.signing import SigningKeyError, load_signer
    from gateway.policy.loader import PolicyLoadError, load_bundle

    try:
        # The workers load it again for themselves; a bundle refused here is
        # every file:line problem under the variable's name, not a traceback
        # from each worker's lifespan.
        load_bundle(settings.policy_dir)
    except PolicyLoadError as exc:
        return f"GATEWAY_POLICY_DIR: {exc}"
    if settings.audit_signing_key:
        try:
            load_signer(settings, create=False)
        except (SigningKeyError, OSError, ValueError) as exc:
            message = str(exc)
            named = "GATEWAY_AUDIT_SIGNING_KEY" in message
            return message if named else f"GATEWAY_AUDIT_SIGNING_KEY: {message}"
    if settings.geoip_db is not None:
        from gateway.geo.mmdb import MmdbLookup, UnsupportedDatabase

        try:
            MmdbLookup(settings.geoip_db).close()
        except UnsupportedDatabase as exc:
            return f"GATEWAY_GEOIP_DB: {exc}"
        except Exception as exc:  # noqa: BLE001 - maxminddb's errors vary by cause; name the file
            return (f"GATEWAY_GEOIP_DB: {settings.geoip_db} is not a readable MaxMind "
                    f"database ({exc})")
    return None


def unshared_quota_problem(settings: Settings, workers: int) -> str | None:
    """Why ``--workers N`` cannot run on these settings, or None.

    Without GATEWAY_REDIS_URL the quota counters live in each process
    (``gateway.quota.memory``), and the kernel spreads a customer's
    connections over the workers: each worker would admit the full limit, so
    the customer would get N times its quotas, silently. Quotas are the
    defence against distillation at volume, so this is refused, not warned.
    ``--demo`` is no exception: it is one worker by default.
    """
    if workers <= 1 or settings.redis_url:
        return None
    return (f"--workers {workers} without GATEWAY_REDIS_URL: each worker would keep its own "
            f"quota counters, so every customer would get up to {workers} times its "
            "requests_per_minute, tokens and concurrent_streams. Set GATEWAY_REDIS_URL "
            "(one Redis shared by every worker and replica), or run one worker (--workers 1).")


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Interface to bind."),
        # Checked here: uvicorn took 99999 and bound it modulo 65536.
        port: int = typer.Option(8080, min=1, max=65535, help="Port to bind."),
        workers: int = typer.Option(1, min=1, help="Worker processes."),
        demo: bool = typer.Option(
            False, "--demo", help="SQLite, bundled policies, stand-in model, demo keys."
        ),
        graceful_timeout: int = typer.Option(
            30,
            envvar="GATEWAY_SHUTDOWN_GRACE_SECONDS",
            help="Seconds to finish in-flight requests and streams on SIGTERM, after the drain.",
        ),
    ) -> None:
        """Run the gateway."""
        if demo:
            _demo_environment()
        try:
            settings = load_settings()
        except SettingsError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from None
        if not settings.policy_dir.is_dir():
            where = escape(str(settings.policy_dir))
            console.print(f"[red]GATEWAY_POLICY_DIR: {where} is not a directory[/red]")
            raise typer.Exit(2)
        problem = _preflight(settings)
        if problem is not None:
            console.print(f"[red]{escape(problem)}[/red]")
            raise typer.Exit(2)
        try:
            # Checked here, before any worker starts, so a bad list is exit code 2
            # with its variable named; each worker loads it again for itself.
            screener = load_screener(settings.sanctions_list, settings.sanctions_threshold)
        except SanctionsListError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from None
        unshared = unshared_quota_problem(settings, workers)
        if unshared is not None:
            console.print(f"[red]{escape(unshared)}[/red]")
            raise typer.Exit(2)
        try:
            # Once here, before any worker starts, so N workers never race to
            # migrate the same file; the workers' lifespans then skip it.
            asyncio.run(prepare_for_serving(settings))
            if screener is not None:
                rescreen_at_start_up(settings, screener)
            if demo:
                seeded = asyncio.run(_seed_demo(settings, screener))
                _print_demo(host, port, seeded, screened=screener is not None)
        except SchemaOutOfDate as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from None
        os.environ[SCHEMA_READY_ENV] = settings.database_url
        if workers > 1:
            from gateway.ops.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

            configured = os.environ.get(MULTIPROC_ENV)
            prepare_multiprocess_dir(
                Path(configured) if configured else Path(tempfile.mkdtemp(prefix="gw-metrics-"))
            )
        # The serving process is a fresh interpreter without the CLI's imports.
        exec_worker(host, port, workers, graceful_timeout)
