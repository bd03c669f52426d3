"""`gateway audit policies [--since 7d]`: which bundle was in force when.

Every bundle a gateway process loads (at start, on a reload, on a rollback)
is a ``policy_reload`` record in the signed log, and every refused reload a
``policy_refused`` one; decisions name their bundle by version. This lists
those records in log order, one line each, so an officer can say which
version decided a request from its time, and see the edit that was refused
(with its first error) and the version that went on deciding. The bundle
texts themselves: `gateway audit policy VERSION`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.policy_timeline import upcoming
from gateway.cli.audit_common import audit_settings, with_engine


def register(app: typer.Typer) -> None:
    app.command("policies")(policies)


def policies(
    since: Annotated[str, typer.Option(help="How far back: 30m, 12h, 7d, 2w.")] = "7d",
) -> None:
    """List the policy bundles loaded and reloads refused, in log order."""
    from gateway.audit.query import policy_events
    from gateway.cli.policy import parse_duration
    from gateway.db.session import session_factory

    cutoff = datetime.now(UTC) - parse_duration(since)

    async def work(engine: AsyncEngine) -> list[tuple[datetime, str, str, dict[str, Any]]]:
        return await policy_events(session_factory(engine), cutoff)

    out = Console(soft_wrap=True, highlight=False)
    events = with_engine(audit_settings(), work)
    if not events:
        out.print(f"no policy loads or refusals since {since}", markup=False)
    for ts, node, kind, payload in events:
        out.print(f"{_t(ts)} {node} {_describe(kind, payload)}", markup=False)
        for line in _upcoming(ts, payload) if kind == "policy_reload" else ():
            out.print(f"    {line}", markup=False)


_VERBS = {"from": "starts deciding", "until": "stops deciding"}


def _upcoming(loaded: datetime, payload: dict[str, Any]) -> list[str]:
    windows = upcoming(loaded, payload)
    return [f"rule {rule} {_VERBS[key]} at {value}" for rule, key, value in windows]


def _t(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _describe(kind: str, payload: dict[str, Any]) -> str:
    if kind == "policy_reload":
        old, new = payload.get("old_version"), _short(payload.get("new_version"))
        return f"loaded  {new} (start)" if old is None else f"loaded  {_short(old)} -> {new}"
    errors = payload.get("errors") or []
    total = payload.get("errors_total", len(errors))
    first = f": {errors[0]}" if errors else ""
    return (
        f"REFUSED kept {_short(payload.get('kept_version'))}: "
        f"{total} error{'s' if total != 1 else ''}{first}"
    )


def _short(version: object) -> str:
    return str(version)[:12] if version else "?"
