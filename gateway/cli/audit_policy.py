"""`gateway audit policy VERSION`: the policy text a recorded decision names.

Decisions name their bundle by ``policy_version``, the SHA-256 of its
canonical content; ``policy_reload`` records carry that content and exports
carry it in their manifest (``gateway/audit/policy_texts.py``). This prints
it, from the database or from an export alone, only once its SHA-256 is the
version asked for, so what an auditor reads is provably the policy that decided.

Exit codes: 0 found and proven, 1 the log (or export) holds no text for the
version, 2 usage error (not a version, an ambiguous prefix, no such file).
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

_VERSION = re.compile(r"[0-9a-f]{8,64}")


def register(app: typer.Typer) -> None:
    app.command("policy")(policy)


def policy(
    version: Annotated[str, typer.Argument(
        help="A policy_version from a record (64 hex), or a unique prefix of at least 8.")],
    export: Annotated[Path | None, typer.Option(
        help="Read an export (JSONL, or a CSV's manifest) instead of the database.")] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Write the exact text (its SHA-256 is the version).")] = None,
    pretty: Annotated[bool, typer.Option(help="Indent it for reading (no longer the hashed "
                                               "bytes).")] = False,
) -> None:
    """Print the policy bundle (canonical JSON) a recorded policy_version names."""
    out = console()
    version = version.lower()
    if _VERSION.fullmatch(version) is None:
        raise typer.BadParameter("not a policy version (hex SHA-256, or 8+ of its first "
                                 f"characters): {version!r}", param_hint="'VERSION'")
    texts = _export_texts(export) if export is not None else _database_texts()
    matches = sorted(v for v in texts if v.startswith(version))
    if len(matches) > 1:
        raise typer.BadParameter(f"the prefix names {len(matches)} versions: "
                                 f"{', '.join(matches)}", param_hint="'VERSION'")
    if not matches:
        error(out, f"no policy text for version {version} in "
              f"{export or 'the log'}: recorded before the log kept policy texts, pruned, "
              "or not a version this gateway ran")
        raise typer.Exit(1)
    found, text = matches[0], texts[matches[0]]
    data = (orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
            if pretty else text.encode("utf-8"))
    if output is not None:
        output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data + (b"\n" if pretty else b""))
        sys.stdout.flush()
    note(out, f"policy version {found}: the text's SHA-256 matches")


def _database_texts() -> dict[str, str]:
    from gateway.audit.policy_texts import policy_texts
    from gateway.db.session import session_factory

    settings = audit_settings()

    async def work(engine: AsyncEngine) -> dict[str, str]:
        return await policy_texts(session_factory(engine))

    return with_engine(settings, work)


def _export_texts(path: Path) -> dict[str, str]:
    from gateway.audit.offline_read import load_manifest
    from gateway.audit.policy_texts import carried_text, text_version

    if not path.is_file():
        raise typer.BadParameter(f"{path}: no such file", param_hint="'--export'")
    try:
        fmt, manifest = load_manifest(path, None)
    except (OSError, ValueError) as exc:
        error(console(), f"{path}: unreadable export: {exc}")
        raise typer.Exit(1) from None
    texts = {v: t for v, t in (manifest.get("policies") or {}).items()
             if isinstance(t, str) and text_version(t) == v}
    if fmt == "jsonl":  # the export's own policy_reload records
        with path.open("rb") as fh:
            for line in fh:
                if b'"policy_reload"' in line and (found := carried_text(orjson.loads(line))):
                    texts.setdefault(*found)
    return texts
