"""``/admin/v1/policy``: what is in force, reload it, validate a candidate.

Compliance officers see the running version, when it was loaded, and the
errors of the last refused reload; a candidate bundle can be validated over
HTTP (files posted as text) without touching the running one.

``deployment_warnings`` (in each answer here) are about the bundle as this
gateway runs it, not its files alone: region rules that its geolocation
cannot give (``gateway.geo.region_blind``). Kept apart from ``warnings``,
which stay what ``gateway policy validate`` says of the files anywhere.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from gateway.admin.auth import AdminActor, require_roles
from gateway.deps import ServicesDep, SessionDep, get_services
from gateway.identity.admin_log import record_admin_action
from gateway.kyc.schemas import rfc3339
from gateway.policy.files import is_yaml
from gateway.policy.holder import PolicyHolder
from gateway.policy.loader import load_dir
from gateway.policy.ruleindex import CompiledRule
from gateway.policy.timing import window_state
from gateway.services import Services

router = APIRouter(prefix="/admin/v1", tags=["policy"])
Compliance = Depends(require_roles("compliance"))


class CandidateBundle(BaseModel):
    files: dict[str, str] = Field(description="file name -> YAML text, e.g. {'rules.yaml': '...'}")


@router.get("/policy")
async def get_policy(services: ServicesDep, actor: AdminActor = Compliance) -> dict[str, Any]:
    holder = services.policy
    bundle = holder.current
    return {
        "version": bundle.version,
        "directory": str(services.settings.policy_dir),
        "loaded_at": rfc3339(holder.loaded_at) if holder.loaded_at else None,
        "models": sorted(bundle.model_names()),
        "report_rules": sorted(bundle.report_rule_ids()),
        "timed_rules": timed_rules(bundle.rules, services.clock()),
        # A bundle the watch loaded was validated by nobody: its warnings
        # (a licence that can never lift its directive...) belong here too.
        "warnings": list(bundle.warnings),
        "deployment_warnings": list(holder.deployment_warnings(bundle.source)),
        "last_refused": holder.last_refused_summary(),
    }


def timed_rules(rules: tuple[CompiledRule, ...], now: datetime) -> list[dict[str, Any]]:
    """Rules with an ``effective`` window and where ``now`` stands in it.

    What the officer on call checks after shipping a directive at 02:00: that
    the running gateway holds it, and that it is ``pending`` until 06:00 (the
    version alone cannot say when a rule starts deciding)."""
    out = []
    for rule in rules:
        if rule.start is None and rule.end is None:
            continue
        state = window_state(rule.start, rule.end, now)
        out.append({
            "id": rule.id, "effect": rule.effect, "mode": rule.mode,
            "from": rfc3339(rule.start) if rule.start else None,
            "until": rfc3339(rule.end) if rule.end else None,
            "state": state,
        })  # fmt: skip
    return out


@router.post("/policy/reload")
async def reload_policy(
    services: ServicesDep, session: SessionDep, actor: AdminActor = Compliance
) -> dict[str, Any]:
    before = services.policy.current.version
    result = await services.policy.reload()
    version = services.policy.current.version
    body = {
        "ok": result.ok,
        "version": version,
        "errors": [str(e) for e in result.errors],
        "warnings": [str(w) for w in result.warnings],
        # Also logged when the bundle is swapped in: a reload adding a Crimea
        # rule under country-only geolocation said nothing anywhere.
        "deployment_warnings": list(result.deployment_warnings),
    }
    if not result.ok:
        raise HTTPException(status_code=422, detail=body)
    # Who reloaded, in the admin log (the audit log's policy_reload record says
    # what changed). The row is also what tells every other process of the
    # deployment to reload, buses or not (gateway.ops.changefeed).
    record_admin_action(session, actor, "policy.reload", "policy", version,
                        {"version": before}, {"version": version}, services.clock())  # fmt: skip
    await session.commit()
    return body


@router.post("/policy/validate")
async def validate_policy(
    candidate: CandidateBundle,
    actor: AdminActor = Compliance,
    services: Annotated[Services | None, Depends(get_services)] = None,
) -> dict[str, Any]:
    """Validate files as ``gateway policy validate DIR`` would the directory; errors
    name files as uploaded, never the server's temporary directory.

    In a worker thread: loading a large bundle takes seconds (parsing, schema
    validation, regex compilation), and on the event loop it held every
    request this worker serves, proxied ones included, for that long."""
    holder = services.policy if services is not None else None  # None: called without a gateway
    return await asyncio.to_thread(_validate_files, candidate.files, holder)


def _validate_files(files: dict[str, str], holder: PolicyHolder | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gateway-policy-") as tmp:
        root = Path(tmp)
        write_candidate(root, files)
        result = load_dir(root)
    deployment = (holder.deployment_warnings(result.bundle)
                  if holder is not None and result.bundle is not None else ())  # fmt: skip
    return {
        "ok": result.ok,
        "version": result.version,
        "errors": [relative(str(e), root) for e in result.errors],
        "warnings": [relative(str(w), root) for w in result.warnings],
        "deployment_warnings": list(deployment),
    }


def write_candidate(directory: Path, files: dict[str, str]) -> None:
    """Lay the posted files out in ``directory``; 422 for a name no bundle could hold.

    Paths are kept as given, so a candidate is judged as the same files on
    disk would be: ``sanctions/extra.yaml`` is refused as a file the loader
    does not read, ``tests/x.yaml`` is a policy test (not merged).
    """
    seen: dict[PurePosixPath, str] = {}
    for name, text in files.items():
        if "\x00" in name:  # valid in JSON, in no file name: open() raises ValueError
            raise HTTPException(status_code=422, detail=f"{name!r}: a file name holds no NUL")
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            detail = f"{name}: must be a relative path inside the bundle directory"
            raise HTTPException(status_code=422, detail=detail)
        if not is_yaml(Path(relative.name)):
            raise HTTPException(status_code=422, detail=f"{name}: only .yaml/.yml files")
        if relative in seen:  # "a.yaml" and "./a.yaml": one would overwrite the other
            raise HTTPException(
                status_code=422,
                detail=f"{seen[relative]} and {name} are both {relative}: "
                "file names must be unique",
            )
        seen[relative] = name
        target = directory.joinpath(*relative.parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\udcff") is valid JSON, not UTF-8
            raise HTTPException(status_code=422, detail=f"{name}: not valid UTF-8 text") from None
        except OSError as exc:  # "a.yaml" and "a.yaml/b.yaml": a file where a directory goes
            raise HTTPException(status_code=422, detail=f"{name}: {exc.strerror}") from None


def relative(message: str, root: Path) -> str:
    """A loader message with the server's temporary directory taken out: paths are
    relative to the bundle, the bundle itself is ``<bundle>`` (as the loader names
    errors it cannot place)."""
    return message.replace(f"{root}/", "").replace(str(root), "<bundle>")
