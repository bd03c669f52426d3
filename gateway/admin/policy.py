"""``/admin/v1/policy``: what is in force, reload it, validate a candidate.

Compliance officers see the running version, when it was loaded, and the
errors of the last refused reload; a candidate bundle can be validated over
HTTP (files posted as text) without touching the running one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from gateway.admin.auth import AdminActor, require_roles
from gateway.deps import ServicesDep, SessionDep
from gateway.identity.admin_log import record_admin_action
from gateway.policy.loader import load_dir

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
        "loaded_at": holder.loaded_at.isoformat() if holder.loaded_at else None,
        "models": sorted(bundle.model_names()),
        "report_rules": sorted(bundle.report_rule_ids()),
        "last_refused": holder.last_refused_summary(),
    }


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
    candidate: CandidateBundle, actor: AdminActor = Compliance
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gateway-policy-") as tmp:
        # A bundle is one flat directory: names are reduced to their base name,
        # so two paths with the same base name would silently overwrite each other.
        seen: dict[str, str] = {}
        for name, text in candidate.files.items():
            target = Path(tmp) / Path(name).name
            if target.suffix not in (".yaml", ".yml"):
                raise HTTPException(status_code=422, detail=f"{name}: only .yaml/.yml files")
            if target.name in seen:
                raise HTTPException(
                    status_code=422,
                    detail=f"{seen[target.name]} and {name} are both {target.name}: "
                    "a bundle is one directory, file names must be unique",
                )
            seen[target.name] = name
            target.write_text(text)
        result = load_dir(Path(tmp))
    return {
        "ok": result.ok,
        "version": result.version,
        "errors": [str(e) for e in result.errors],
        "warnings": [str(w) for w in result.warnings],
    }
