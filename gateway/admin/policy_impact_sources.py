"""What ``POST /admin/v1/policy/impact`` replays and compares with, beyond this
gateway's own log and the bundle in force: the CLI's ``--from-jsonl`` and
``--against`` over HTTP.

- ``records``: decision records to replay instead of the log, as the lines of
  a ``gateway audit export --format jsonl`` file (parsed: a JSON list of
  them). As ``--from-jsonl`` reads that file: decisions and ``policy_reload``
  records are replayed, other kinds skipped, the manifest's ownership trees
  put back into the records that name them by digest, and ``since`` applies
  (records older than it are left out). At most ``MAX_RECORDS``: the body
  is held in the serving process (and is bounded by
  ``GATEWAY_MAX_BODY_BYTES`` before that); larger exports are for the CLI.
- ``against`` (files, as ``files``) or ``against_version`` (a version, or a
  unique prefix of 8+ characters, whose text the audit log keeps, as ``GET
  /audit/policies/{version}`` serves it): the bundle ``"customers": true``
  compares the candidate with, instead of the bundle in force. A logged text
  is loaded as the loader loads files, and used only if it is that version
  again (its SHA-256 is the version, ``gateway.audit.policy_texts``).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import HTTPException
from pydantic import Field

from gateway.admin.policy import CandidateBundle, relative, write_candidate
from gateway.policy.compiled import CompiledBundle, compile_bundle
from gateway.policy.loader import load_dir
from gateway.services import Services

MAX_RECORDS = 20_000
"""Posted records per impact run."""
REPLAYED_KINDS = ("decision", "policy_reload")
_VERSION = re.compile(r"[0-9a-f]{8,64}")


class ImpactRequest(CandidateBundle):
    since: str = Field("7d", description="How far back to replay: 30m, 12h, 7d, 2w.")
    at: datetime | None = Field(
        None, description="Re-decide at this RFC 3339 instant instead of each record's own time."
    )
    customers: bool = Field(
        False,
        description="Judge every customer record instead of recorded traffic, against the "
        "bundle in force (or `against`), both at `at` (default now), as "
        "`policy impact --customers`.",
    )
    against: dict[str, str] | None = Field(
        None, description="With `customers`: the bundle to compare with, as files "
        "(like `files`), as `policy impact --customers --against DIR`.")  # fmt: skip
    against_version: str | None = Field(
        None,
        description="With `customers`: compare with the bundle of this version (or a "
        "unique prefix of 8+ characters) the audit log keeps (`GET /audit/policies/{version}`).",
    )
    records: Annotated[list[dict[str, Any]], Field(max_length=MAX_RECORDS)] | None = Field(
        None, description="Replay these records (the lines of a `gateway audit export "
        "--format jsonl` file, as JSON objects) instead of this gateway's log, as "
        f"`--from-jsonl`; `since` applies to them too. At most {MAX_RECORDS}.")  # fmt: skip


def refuse_mixed_sources(body: ImpactRequest) -> None:
    """422 for options that do not go together (each names the other)."""
    if body.against is not None and body.against_version is not None:
        raise HTTPException(422, "against and against_version: give one bundle to compare with")
    if not body.customers and (body.against is not None or body.against_version is not None):
        raise HTTPException(
            422,
            'against/against_version: only with "customers": true (a '
            "replay compares with the recorded decisions)",
        )
    if body.customers and body.records is not None:
        raise HTTPException(422, 'records: a replay of decisions, not with "customers": true')


def compile_files(files: dict[str, str]) -> CompiledBundle | dict[str, Any]:
    """The compiled bundle of posted files, or the answer naming why it does not load."""
    with tempfile.TemporaryDirectory(prefix="gateway-policy-") as tmp:
        root = Path(tmp)
        write_candidate(root, files)
        result = load_dir(root)
    warnings = tuple(relative(str(w), root) for w in result.warnings)
    if not result.ok or result.bundle is None or result.version is None:
        return {"ok": False, "errors": [relative(str(e), root) for e in result.errors],
                "warnings": list(warnings)}  # fmt: skip
    return compile_bundle(result.bundle, result.version, warnings=warnings)


def compile_against(files: dict[str, str]) -> CompiledBundle:
    """``against`` files, compiled; 422 naming each error when they do not load."""
    loaded = compile_files(files)
    if isinstance(loaded, dict):
        raise HTTPException(422, [f"against: {e}" for e in loaded["errors"]])
    return loaded


async def logged_text(services: Services, named: str) -> tuple[str, str]:
    """``(version, text)`` of the logged bundle ``named`` (version or prefix); 422 if none."""
    from gateway.audit.policy_texts import policy_texts  # on use, as the audit routes

    wanted = named.lower()
    if _VERSION.fullmatch(wanted) is None:
        raise HTTPException(422, "against_version: hex SHA-256, or 8+ of its first characters")
    texts = await policy_texts(services.sessions)
    matches = sorted(v for v in texts if v.startswith(wanted))
    if len(matches) != 1:
        found = f"names {len(matches)} versions" if matches else "has no policy text in the log"
        raise HTTPException(422, f"against_version: {wanted} {found}")
    return matches[0], texts[matches[0]]


def compile_logged(version: str, text: str) -> CompiledBundle:
    """The logged canonical text, loaded as a one-file bundle (JSON is YAML)."""
    loaded = compile_files({"logged.yaml": text})
    if isinstance(loaded, dict) or loaded.version != version:
        # A text written by another release may not load here as the same bundle.
        why = "; ".join(loaded["errors"]) if isinstance(loaded, dict) else loaded.version
        raise HTTPException(422, f"against_version: the logged bundle {version} does not load "
                                 f"here as itself ({why})")  # fmt: skip
    return loaded


def posted_records(records: list[dict[str, Any]], cutoff: datetime) -> list[Mapping[str, Any]]:
    """The replayable records of posted export lines, as ``--from-jsonl`` reads a file."""
    from gateway.audit.ownership_snapshots import inline_tree, proven

    trees: dict[str, str] = {}
    for item in records:
        if item.get("kind") == "manifest":
            carried = item.get("ownership_snapshots")
            if isinstance(carried, dict):
                trees.update(
                    (d, t)
                    for d, t in carried.items()
                    if isinstance(d, str) and isinstance(t, str) and proven(d, t)
                )
    out: list[Mapping[str, Any]] = []
    for item in records:
        if item.get("kind", "decision") in REPLAYED_KINDS and _since(item, cutoff):
            inline_tree(item, trees)
            out.append(item)
    return out


def _since(item: Mapping[str, Any], cutoff: datetime) -> bool:
    """Decided at or after ``cutoff``; a record without a readable time is kept,
    for the replay to count as skipped and say why."""
    try:
        ts = datetime.fromisoformat(str(item["ts"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return True
    return (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)) >= cutoff
