"""``POST /admin/v1/policy/test`` and ``/policy/impact``: ``gateway policy test``
and ``gateway policy impact`` for an officer with no shell on the gateway host.

Both take a candidate bundle as ``POST /policy/validate`` does (``{"files":
{name: yaml}}``, laid out as on disk, so ``tests/*.yaml`` are its policy
tests) and answer the CLI's report as JSON. Loading, running cases and
replaying the log are CPU work of seconds on a large bundle or log: in a
worker thread, so the requests this worker serves are not held meanwhile
(the log is read on the loop and fed to it in batches, ``thread_feed.py``).
Each token runs one of each at a time, and a bounded number a minute; each
run is kept in the admin action log (``policy_runs.py``). What impact
replays and compares with besides the log and the bundle in force (posted
records, ``against``) is in ``policy_impact_sources.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from gateway.admin.auth import AdminActor, require_roles
from gateway.admin.policy import CandidateBundle, relative, write_candidate
from gateway.admin.policy_impact_sources import (
    ImpactRequest,
    compile_against,
    compile_files,
    compile_logged,
    logged_text,
    posted_records,
    refuse_mixed_sources,
)
from gateway.admin.policy_runs import RUN_TARGET, cases_summary, impact_summary, policy_runs
from gateway.admin.thread_feed import feed_thread
from gateway.audit import query
from gateway.deps import ServicesDep, SessionDep
from gateway.identity.admin_log import record_admin_action
from gateway.policy.compiled import CompiledBundle
from gateway.policy.loader import load_dir
from gateway.policy.timing import parse_duration
from gateway.services import Services

router = APIRouter(prefix="/admin/v1", tags=["policy"])
Compliance = Depends(require_roles("compliance"))


@router.post("/policy/test")
async def test_policy(
    candidate: CandidateBundle,
    services: ServicesDep,
    session: SessionDep,
    actor: AdminActor = Compliance,
) -> dict[str, Any]:
    """Run the candidate's ``tests/*.yaml`` cases, as ``gateway policy test``:
    every case's outcome, the counts, and the rules no case saw match."""
    async with policy_runs(services).run(actor, "test"):
        doc = await asyncio.to_thread(_test_files, candidate.files)
    in_force = services.policy.current.version
    record_admin_action(session, actor, "policy.test", RUN_TARGET, doc["version"] or "invalid",
                        None, cases_summary(doc, in_force), services.clock())  # fmt: skip
    await session.commit()
    return doc


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
    body: ImpactRequest,
    services: ServicesDep,
    session: SessionDep,
    actor: AdminActor = Compliance,
) -> dict[str, Any]:
    """Replay the decisions this gateway's audit log recorded since ``since``
    (or the posted ``records``) against the candidate, as ``gateway policy
    impact``: the flips and whom they concern. An invalid candidate answers
    ``ok`` false with its errors."""
    try:
        window = parse_duration(body.since)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"since: {exc}") from None
    if body.at is not None and body.at.tzinfo is None:
        detail = "at: needs a time zone, e.g. 2026-06-13T06:00:00Z"
        raise HTTPException(status_code=422, detail=detail)
    refuse_mixed_sources(body)
    source = "customers" if body.customers else "log" if body.records is None else "records"
    async with policy_runs(services).run(actor, "impact"):
        loaded = await asyncio.to_thread(compile_files, body.files)
        if isinstance(loaded, dict):
            doc = loaded
        elif body.customers:
            doc = await _customers(body, services, loaded)
        else:
            doc = await _replay(body, services, loaded, services.clock() - window)
    target = "invalid" if isinstance(loaded, dict) else loaded.version
    record_admin_action(session, actor, "policy.impact", RUN_TARGET, target, None,
                        impact_summary(doc, source, body.since), services.clock())  # fmt: skip
    await session.commit()
    return doc


async def _customers(
    body: ImpactRequest, services: Services, candidate: CompiledBundle
) -> dict[str, Any]:
    """``--customers``: every customer record, judged by the candidate and by
    ``against`` (files or a logged version; default the bundle in force)."""
    # Imported on use: a serving worker that never answers these does not carry them.
    from gateway.admin.policy_exposure import customers_impact

    baseline = services.policy.current
    if body.against is not None:
        baseline = await asyncio.to_thread(compile_against, body.against)
    elif body.against_version is not None:
        version, text = await logged_text(services, body.against_version)
        baseline = await asyncio.to_thread(compile_logged, version, text)
    doc = await customers_impact(services.sessions, candidate, baseline,
                                 body.at or services.clock())  # fmt: skip
    return {"ok": True, "errors": [], "warnings": list(candidate.warnings), **doc}


async def _replay(
    body: ImpactRequest, services: Services, candidate: CompiledBundle, cutoff: datetime
) -> dict[str, Any]:
    """The decisions of the log since ``cutoff`` (or of the posted records), re-decided."""
    from gateway.policy.impact import impact
    from gateway.policy.impact_doc import impact_document

    at = body.at
    if body.records is not None:
        posted = body.records
        report = await asyncio.to_thread(
            lambda: impact(posted_records(posted, cutoff), candidate, at))
    else:

        async def records() -> AsyncIterator[dict[str, Any]]:
            async for item in query.iter_replay_facts(services.sessions, cutoff):
                yield item
            for item in await query.policy_reloads(services.sessions, cutoff):
                yield item  # after the decisions, as the CLI reads them

        # Streamed to the thread a few batches ahead: a week of a busy log is
        # never held in this serving process's memory at once.
        report = await feed_thread(records(), lambda items: impact(items, candidate, at))
    doc = impact_document(report, candidate.version)
    return {"ok": True, "since": body.since, "source": "log" if body.records is None
            else "records", "errors": [], "warnings": list(candidate.warnings), **doc}  # fmt: skip
