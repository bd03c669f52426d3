"""`gateway audit` commands: export, verify, public-key, farms (prune, seal, hold:
audit_upkeep.py; policy: audit_policy.py).

Exit codes: 0 ok, 1 the log (or the export) failed verification, 2 usage error
(a bad option or filter, no pinned signing key for verify, a database that does
not exist or is not the gateway's, an output file that cannot be written).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.audit_common import audit_settings as _settings
from gateway.cli.audit_common import console as _console
from gateway.cli.audit_common import time_option as _time
from gateway.cli.audit_common import with_engine as _with_engine
from gateway.cli.audit_ownership import register as register_ownership
from gateway.cli.audit_policies import register as register_policies
from gateway.cli.audit_policy import register as register_policy
from gateway.cli.audit_upkeep import register as register_upkeep
from gateway.cli.database import require_existing
from gateway.cli.farms import farms
from gateway.cli.messages import error, note, say

app = typer.Typer(no_args_is_help=True)
app.command()(farms)


def _trusted_keys(paths: list[Path] | None) -> list[bytes] | None:
    from gateway.audit.signing import SigningKeyError, load_public_key

    if not paths:
        return None
    try:
        return [load_public_key(p.read_text(encoding="utf-8")) for p in paths]
    except (OSError, SigningKeyError) as exc:
        raise typer.BadParameter(f"--public-key: {exc}") from None


@app.command()
def verify(
    export: Annotated[Path | None, typer.Option(help="Verify an export file offline.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Manifest of a CSV export "
                                                  "(default FILE.manifest.json).")] = None,
    public_key: Annotated[list[Path] | None, typer.Option(
        "--public-key", help="Trusted public key (PEM or base64); repeatable.")] = None,
    trust_stored_keys: Annotated[bool, typer.Option(
        help="Accept every key stored in audit_keys (with --export: in the manifest), e.g. "
             "after a key rotation; proves only self-consistency.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    at: Annotated[str | None, typer.Option(
        help="Judge unsigned records as of this RFC 3339 time: when a database copy was "
             "taken, or an export received (default: now; for an export, its manifest's "
             "generated_at, which is not signed).")] = None,
) -> None:
    """Recompute every hash chain and checkpoint signature; exit 1 on any break.

    Signatures are checked against a pinned key: --public-key, else (database
    only) the signing key the gateway itself uses (GATEWAY_AUDIT_SIGNING_KEY or
    audit_signing.key beside the SQLite file). Without one, exit 2 unless
    --trust-stored-keys says to accept the keys the log (or export) carries.
    Deleted checkpoints fail too: records left unsigned for longer than the
    writer's signing cadence (as of --at) are a failure.
    """
    console = _console()
    trusted = _trusted_keys(public_key)
    when = _time(at, "at")
    if export is not None:
        from gateway.audit.offline import verify_export

        if not export.is_file():
            error(console, f"{export}: no such file")
            raise typer.Exit(2)
        if trusted is None and not trust_stored_keys:
            _unpinned(console, "no --public-key given", "inside the manifest")
        try:
            offline = verify_export(export, manifest, trusted, when)
        except (OSError, ValueError, KeyError) as exc:
            error(console, f"{export}: unreadable export: {exc}")
            raise typer.Exit(1) from None
        if offline.policy_texts_missing:
            note(console, f"{len(offline.policy_texts_missing)} policy version(s) the records "
                  "name have no text in the export (decided before the log kept policy texts)")
        if offline.keys_from_manifest:
            note(console, "--trust-stored-keys: trusting the keys inside the manifest; this "
                  "proves the file is self-consistent, not who signed it (pin --public-key)")
        judged = (f"; unsigned records judged as of {offline.judged_at:%Y-%m-%dT%H:%M:%SZ} "
                  f"({offline.judged_by})" if offline.judged_at and offline.unsigned else "")
        # A filtered export proves nothing about what it left out: say what it selects.
        selects = ", ".join(f"{k}={v}" for k, v in sorted(offline.filters.items()))
        mode = f"filtered: {selects}" if offline.mode == "filtered" else offline.mode
        _report(console, offline.to_dict(), as_json, offline.ok,
                f"{offline.records} records ({mode}): {offline.proven} proven by "
                f"signed checkpoints, {offline.unsigned} chained after the last checkpoint, "
                f"{offline.unlinked} not linkable (filtered){judged}")
        return
    settings = _settings()
    # A mistyped database path must be named as such, not as a missing key beside it.
    require_existing(settings)
    if trusted is None and not trust_stored_keys:
        from gateway.audit.signing import SigningKeyError, load_signer

        try:
            trusted = [load_signer(settings, create=False).public_raw]
        except SigningKeyError as exc:
            _unpinned(console, str(exc), "stored in the database")
    elif trusted is None:
        note(console, "--trust-stored-keys: trusting every key stored in the database; this "
              "proves the log is self-consistent, not who signed it (pin --public-key)")
    from gateway.audit.verify import verify_log

    # Checkpoints written before they stated their cadence are held to this one.
    cadence = settings.audit_checkpoint_seconds + min(settings.audit_checkpoint_seconds, 10.0)
    report = _with_engine(settings, lambda engine: verify_log(
        engine, trusted_keys=trusted, at=when, legacy_within_s=cadence))
    nodes = ", ".join(f"{n.node_id}: {n.records} records, {n.checkpoints} checkpoints"
                      + (f", {n.unsigned} unsigned" if n.unsigned else "")
                      for n in report.nodes) or "no chains"
    _report(console, report.to_dict(), as_json, report.ok, nodes)


def _unpinned(console: Console, why: str, carried: str) -> NoReturn:
    """Refuse to vouch for signatures checked against keys the checked data supplies.

    Exit 2 (usage), not 1: nothing was found wrong with the log, verify was not
    told what to trust, so it checked nothing; 1 would accuse a log that may be
    intact, and 0 would vouch for one a forger re-signed with a key of their own
    and stored beside the records.
    """
    error(console, f"no pinned signing key ({why}): a log re-signed with another key would "
           "pass. Pin the gateway's published key with --public-key FILE (`gateway audit "
           f"public-key` prints it), or pass --trust-stored-keys to accept the keys {carried} "
           "(proves only self-consistency).")
    raise typer.Exit(2)


def _report(console: Console, doc: dict[str, Any], as_json: bool, ok: bool, summary: str) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        console.print(Text(summary), highlight=False)
        for problem in doc.get("problems", [])[:20]:
            place = f"{problem.get('node_id') or ''} seq {problem.get('seq')}".strip()
            say(console, "BROKEN", "red", f"{problem['kind']} at {place}: {problem['message']}")
        console.print("[green]OK[/green]: the log verifies" if ok else "[red]FAILED[/red]")
    raise typer.Exit(0 if ok else 1)


@app.command()
def export(
    from_: Annotated[str | None, typer.Option(
        "--from", help="RFC 3339 start with a zone, e.g. 2026-06-14T00:00:00Z (inclusive).")]
    = None,
    to: Annotated[str | None, typer.Option(help="RFC 3339 end with a zone (exclusive).")] = None,
    format: Annotated[Literal["jsonl", "csv"], typer.Option(help="jsonl or csv.")] = "jsonl",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File (default stdout).")]
    = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer (filtered).")] = None,
    decision: Annotated[Literal["allow", "deny"] | None, typer.Option()] = None,
    rule: Annotated[str | None, typer.Option(help="Only decisions this rule decided.")] = None,
    report_rule: Annotated[str | None, typer.Option(
        help="Only decisions this report-mode rule matched.")] = None,
    model: Annotated[str | None, typer.Option()] = None,
    origin: Annotated[str | None, typer.Option(help="Country or ISO 3166-2 region.")] = None,
    citizenship: Annotated[str | None, typer.Option(
        help="Only principals holding this citizenship (ISO 3166-1 alpha-2).")] = None,
) -> None:
    """Stream records to a file with a manifest for offline `gateway audit verify --export`."""
    from gateway.audit.export import Exporter
    from gateway.audit.filters import FilterError, decision_filters
    from gateway.db.session import session_factory

    # The HTTP route's validation (times, origin, range), so both refuse the same input.
    try:
        filters = decision_filters(customer_id=customer, decision=decision, rule_id=rule,
                                   report_rule_id=report_rule, model=model, origin=origin,
                                   citizenship=citizenship, from_=from_, to=to)
    except FilterError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"'--{exc.param}'") from None
    settings = _settings()
    console = _console()

    async def work(engine: AsyncEngine) -> dict[str, Any]:
        exporter = Exporter(session_factory(engine), filters, format)
        total = await exporter.plan()
        try:
            sink = output.open("wb") if output is not None else sys.stdout.buffer
        except OSError as exc:
            error(console, f"-o {output}: cannot write the export: {exc.strerror or exc}")
            raise typer.Exit(2) from None
        columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, console=console, transient=output is None) as progress:
                task = progress.add_task("export", total=total)
                async for line in exporter.lines():
                    sink.write(line)
                    if exporter.exported % 1000 == 0:
                        progress.update(task, completed=exporter.exported)
                progress.update(task, completed=exporter.exported)
        finally:
            if output is not None:
                sink.close()
        return exporter.manifest

    manifest = _with_engine(settings, work)
    if format == "csv" and output is not None:
        output.with_name(output.name + ".manifest.json").write_bytes(
            orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    elif format == "csv":
        note(console, "CSV to stdout: manifest not written (use -o)")
    console.print(f"{manifest['record_count']} records exported ({manifest['mode']})")


@app.command("public-key")
def public_key_cmd(
    base64_raw: Annotated[bool, typer.Option("--base64", help="Raw key as base64.")] = False,
) -> None:
    """Print the checkpoint-signing public key (PEM) for auditors to pin."""
    from gateway.audit.signing import SigningKeyError, load_signer, public_pem

    try:
        signer = load_signer(_settings(), create=False)
    except SigningKeyError as exc:
        error(_console(), str(exc))
        raise typer.Exit(1) from None
    typer.echo(signer.public_b64 if base64_raw else public_pem(signer.public_raw).rstrip())
    _console().print(f"fingerprint {signer.fingerprint}")


register_upkeep(app)
register_policy(app)
register_policies(app)
register_ownership(app)
