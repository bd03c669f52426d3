"""``POST /admin/v1/policy/test`` and ``/policy/impact``: ``gateway policy test``
and ``gateway policy impact`` for an officer with no shell on the gateway host.

Both take a candidate bundle as ``POST /policy/validate`` does (``{"files":
{name: yaml}}``, laid out as on disk, so ``tests/*.yaml`` are its policy
tests) and answer the CLI's report as JSON. Loading, running cases and
replaying the log are CPU work of seconds on a large bundle or log: in a
worker thread, so the requests this worker serves are not held meanwhile
(the log is read on the loop and fed to it in batches, ``thread_feed.py``).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import Field

from gateway.admin.auth import AdminActor, require_roles
from gateway.admin.policy import CandidateBundle, relative, write_candidate
from gateway.admin.thread_feed import feed_thread
from gateway.audit import query
from gateway.deps import ServicesDep
from gateway.policy.compiled import CompiledBundle, compile_bundle
from gateway.policy.loader import load_dir
from gateway.policy.timing import parse_duration

router = APIRouter(prefix="/admin/v1", tags=["policy"])
Compliance = Depends(require_roles("compliance"))


class ImpactRequest(CandidateBundle):
    since: str = Field("7d", description="How far back to replay: 30m, 12h, 7d, 2w.")
    at: datetime | None = Field(
        None, description="Re-decide at this RFC 3339 instant instead of each record's own time."
    )
    customers: bool = Field(
        False,
        description="Judge every customer record instead of recorded traffic, against the "
        "bundle in force, both at `at` (default now), as `policy impact --customers`.",
    )


@router.post("/policy/test")
async def test_policy(candidate: CandidateBundle, actor: AdminActor = Compliance) -> dict[str, Any]:
    """Run the candidate's ``tests/*.yaml`` cases, as ``gateway policy test``:
    every case's outcome, the counts, and the rules no case saw match."""
    return await asyncio.to_thread(_test_files, candidate.files)


def _test_files(files: dict[str, str]) -> dict[str, Any]:
    from gateway.policy.case_report import case_document  # on use: not in every worker

    with tempfile.TemporaryDirectory(prefix="gateway-policy-") as tmp:
        root = Path(tmp)
        write_candidate(root, files)
        doc = case_document(root, load_dir(root))
    doc["errors"] = [relative(e, root) for e in doc["errors"]]
    doc["warnings"] = [relative(w, root) for w in doc["warnings"]]
    return doc


@router.post("/policy/impact")
async def impact_policy(
    body: ImpactRequest, services: ServicesDep, actor: AdminActor = Compliance
) -> dict[str, Any]:
    """Replay the decisions this gateway's audit log recorded since ``since``
    against the candidate, as ``gateway policy impact``: the flips and whom
    they concern. An invalid candidate answers ``ok`` false with its errors."""
    try:
        window = parse_duration(body.since)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"since: {exc}") from None
    if body.at is not None and body.at.tzinfo is None:
        detail = "at: needs a time zone, e.g. 2026-06-13T06:00:00Z"
        raise HTTPException(status_code=422, detail=detail)
    loaded = await asyncio.to_thread(_compile_files, body.files)
    if isinstance(loaded, dict):
        return loaded
    # Imported on use: a serving worker that never answers these does not carry them.
    from gateway.admin.policy_exposure import customers_impact
    from gateway.policy.impact import impact
    from gateway.policy.impact_doc import impact_document

    if body.customers:
        doc = await customers_impact(services.sessions, loaded, services.policy.current,
                                     body.at or services.clock())  # fmt: skip
        return {"ok": True, "errors": [], "warnings": list(loaded.warnings), **doc}
    cutoff = services.clock() - window
    candidate, at = loaded, body.at

    async def records() -> AsyncIterator[dict[str, Any]]:
        async for item in query.iter_replay_facts(services.sessions, cutoff):
            yield item
        for item in await query.policy_reloads(services.sessions, cutoff):
            yield item  # after the decisions, as the CLI reads them

    # Streamed to the thread a few batches ahead: a week of a busy log is
    # never held in this serving process's memory at once.
    report = await feed_thread(records(), lambda items: impact(items, candidate, at))
    doc = impact_document(report, loaded.version)
    return {"ok": True, "since": body.since, "errors": [],
            "warnings": list(loaded.warnings), **doc}  # fmt: skip


def _compile_files(files: dict[str, str]) -> CompiledBundle | dict[str, Any]:
    """The compiled candidate, or the answer naming why it does not load."""
    with tempfile.TemporaryDirectory(prefix="gateway-policy-") as tmp:
        root = Path(tmp)
        write_candidate(root, files)
        result = load_dir(root)
    warnings = tuple(relative(str(w), root) for w in result.warnings)
    if not result.ok or result.bundle is None or result.version is None:
        return {"ok": False, "errors": [relative(str(e), root) for e in result.errors],
                "warnings": list(warnings)}  # fmt: skip
    return compile_bundle(result.bundle, result.version, warnings=warnings)
