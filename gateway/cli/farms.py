"""`gateway audit farms`: groups of customers that look like one actor (account farms).

Reads the decision log of a window (``--since 7d``, or ``--from T [--to T]``)
and prints the clusters of the farm report (``gateway.audit.farms``,
``docs/farms.md``) as a table, or the report as JSON with ``--format json``.
Read-only. Exit 0 with a report (with or without clusters); 2 for a usage
error: a bad time, duration or option, ``--since`` with ``--from``/``--to``,
``--to`` without ``--from``, a database that does not exist.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.audit.farms import (
    DEFAULT_CAPABILITIES,
    DEFAULT_MIN_ACCOUNTS,
    farm_options,
    farm_report,
)
from gateway.cli.database import audit_settings, run_on_existing_database

DEFAULT_SINCE = "7d"


def _window(since: str | None, from_: str | None, to: str | None) -> tuple[datetime, datetime]:
    from gateway.audit.filters import FilterError, parse_time
    from gateway.cli.policy import parse_duration

    if since is not None and (from_ is not None or to is not None):
        raise typer.BadParameter("give either --since or --from/--to, not both",
                                 param_hint="'--since'")
    if to is not None and from_ is None:
        raise typer.BadParameter("--to needs --from", param_hint="'--to'")
    now = datetime.now(UTC)
    if from_ is None:
        return now - parse_duration(since or DEFAULT_SINCE), now
    try:
        start = parse_time(from_, "from")
        end = parse_time(to, "to") if to is not None else now
    except FilterError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"'--{exc.param}'") from None
    if end <= start:
        raise typer.BadParameter(f"must be after --from ({from_})", param_hint="'--to'")
    return start, end


def farms(
    since: Annotated[str | None, typer.Option(
        help=f"How far back: 30m, 12h, 7d, 2w (default {DEFAULT_SINCE}).")] = None,
    from_: Annotated[str | None, typer.Option(
        "--from", help="RFC 3339 start with a zone (inclusive), instead of --since.")] = None,
    to: Annotated[str | None, typer.Option(
        help="RFC 3339 end with a zone (exclusive; default now).")] = None,
    min_accounts: Annotated[int, typer.Option(
        min=2, help="Smallest cluster reported (customers).")] = DEFAULT_MIN_ACCOUNTS,
    capability: Annotated[list[str] | None, typer.Option(
        help="A capability distillation harvests; repeatable "
             f"(default: {', '.join(DEFAULT_CAPABILITIES)}).")] = None,
    max_ip_customers: Annotated[int, typer.Option(
        min=2, help="An address or network used by more customers links nobody.")] = 50,
    max_prompt_customers: Annotated[int, typer.Option(
        min=2, help="A prompt sent by more customers (health checks) links nobody.")] = 10,
    min_shared_prompts: Annotated[int, typer.Option(
        min=1, help="Identical prompts two customers must share to be linked.")] = 2,
    include_weak: Annotated[bool, typer.Option(
        help="Also list clusters joined by one shared address or network alone.")] = False,
    format: Annotated[Literal["table", "json"], typer.Option(help="table or json.")] = "table",
) -> None:
    """Find groups of customers that look like one actor (account farms, distillation)."""
    start, end = _window(since, from_, to)
    settings = audit_settings()
    try:
        options = farm_options(
            settings, start, end, min_accounts=min_accounts, capabilities=capability,
            include_weak=include_weak, max_ip_customers=max_ip_customers,
            max_prompt_customers=max_prompt_customers,
            min_shared_prompts=min_shared_prompts)  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--capability'") from None
    doc = run_on_existing_database(settings, lambda engine: farm_report(engine, options))
    if format == "json":
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _print(Console(emoji=False), doc)


def _short(iso: str) -> str:
    """``2026-03-01T12:00:05.123Z`` as ``2026-03-01 12:00`` (the JSON has the full time)."""
    return iso[:16].replace("T", " ")


def _print(console: Console, doc: dict[str, Any]) -> None:
    scanned, ignored = doc["scanned"], doc["ignored"]
    console.print(Text(
        f"{_short(doc['from'])} to {_short(doc['to'])} UTC: {scanned['requests']} requests of "
        f"{scanned['customers']} customers, {scanned['links']} links; ignored "
        f"{ignored['crowded']} crowded addresses/networks, {ignored['common_prompts']} "
        f"common prompts, {ignored['proxy_addresses']} proxy addresses"), highlight=False)
    if not doc["clusters"]:
        console.print("no clusters")
    else:
        table = Table("#", "score", "accounts", "keys", "requests", "watched", "429", "403",
                      "tokens in/out", "links a/n/p", "seen", "customers")
        for c in doc["clusters"]:
            links = c["links"]
            weak = " (weak)" if c["weak"] else ""
            names = ", ".join(c["customers"][:6]) + (", ..." if len(c["customers"]) > 6 else "")
            table.add_row(
                str(c["rank"]), f"{c['score']:.3f}{weak}", str(c["accounts"]), str(c["keys"]),
                str(c["requests"]), f"{c['watched_share']:.0%}", str(c["rate_limited"]),
                str(c["denied"]), f"{c['tokens_in']}/{c['tokens_out']}",
                f"{links['addresses']}/{links['networks']}/{links['prompts']}",
                f"{_short(c['first_seen'])} .. {_short(c['last_seen'])}", Text(names))
        console.print(table)
    if doc["weak_clusters_hidden"]:
        console.print(Text(f"{doc['weak_clusters_hidden']} weak clusters (one shared address "
                           "or network, nothing else) not shown: --include-weak"))
