"""`gateway audit ownership SHA256`: the ownership tree a recorded decision names.

A decision of a customer with a large ownership tree names it by
``facts.principal.ownership_sha256``; the log stores the tree once and exports
carry it in their manifest (``gateway/audit/ownership_snapshots.py``). This
prints it, from the database or from an export alone, only once its SHA-256
is the digest asked for.

Exit codes: 0 found and proven, 1 not stored (or not in the export), 2 usage
error (not a digest, no such file).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.audit_common import audit_settings, console, with_engine
from gateway.cli.messages import error, note

_DIGEST = re.compile(r"[0-9a-f]{64}")


def register(app: typer.Typer) -> None:
    app.command("ownership")(ownership)


def ownership(
    sha256: Annotated[str, typer.Argument(
        help="An ownership_sha256 from a record's facts.principal (64 hex).")],
    export: Annotated[Path | None, typer.Option(
        help="Read an export's manifest (JSONL, or a CSV's) instead of the database.")] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Write the exact text (its SHA-256 is the digest).")] = None,
    pretty: Annotated[bool, typer.Option(help="Indent it for reading (no longer the hashed "
                                               "bytes).")] = False,
) -> None:
    """Print the ownership tree (canonical JSON) a record names by ownership_sha256."""
    out = console()
    digest = sha256.lower()
    if _DIGEST.fullmatch(digest) is None:
        raise typer.BadParameter(f"not an ownership digest (64 hex characters): {sha256!r}",
                                 param_hint="'SHA256'")
    text = (_export_tree(export, digest) if export is not None else _database_tree(digest))
    if text is None:
        error(out, f"no ownership tree {digest} in {export or 'the log'}")
        raise typer.Exit(1)
    data = (orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
            if pretty else text.encode("utf-8"))
    if output is not None:
        output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data + b"\n")
        sys.stdout.flush()
    note(out, f"ownership tree {digest}: the text's SHA-256 matches")


def _database_tree(digest: str) -> str | None:
    from gateway.audit.ownership_snapshots import snapshot_texts
    from gateway.db.session import session_factory

    async def work(engine: AsyncEngine) -> dict[str, str]:
        return await snapshot_texts(session_factory(engine), [digest])

    return with_engine(audit_settings(), work).get(digest)


def _export_tree(path: Path, digest: str) -> str | None:
    from gateway.audit.offline_read import load_manifest
    from gateway.audit.ownership_snapshots import proven

    if not path.is_file():
        raise typer.BadParameter(f"{path}: no such file", param_hint="'--export'")
    try:
        _, manifest = load_manifest(path, None)
    except (OSError, ValueError) as exc:
        error(console(), f"{path}: unreadable export: {exc}")
        raise typer.Exit(1) from None
    text = (manifest.get("ownership_snapshots") or {}).get(digest)
    return text if isinstance(text, str) and proven(digest, text) else None
