"""``POST /admin/v1/policy/explain``: ``gateway policy explain`` over HTTP.

The bundle in force, the customer record in the database (or a principal as
policy tests write one), the gateway's own locator for ``client_ip``. Not a
proxied request: no decision record is written. Who asked about whom is kept
in the admin action log (``policy.explain``; target type ``policy_explain``,
which the change feed ignores: nothing cached changes).

The explain machinery (the trace, the policy-test schemas) is imported on the
first call, not when the worker starts: a rarely used admin route should not
cost every worker the ~0.8 MB its modules take. So the body is validated
here, in JSON mode as FastAPI would (``ExplainIn`` is strict), and its errors
are FastAPI's 422 with the same ``loc``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from gateway.admin.auth import AdminActor, require_roles
from gateway.deps import ServicesDep, SessionDep
from gateway.identity.admin_log import record_admin_action
from gateway.identity.screening_summary import list_in_force
from gateway.policy.loader import rule_locations

if TYPE_CHECKING:  # imported on the first call (module docstring)
    from gateway.identity.principal import Principal
    from gateway.policy.decision import QuotaPlan
    from gateway.policy.explain_input import ExplainIn
    from gateway.services import Services

router = APIRouter(prefix="/admin/v1", tags=["policy"])
Compliance = Depends(require_roles("compliance"))


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object",
            "description": "customer_id or principal, request {model, endpoint, capabilities "
                           "or body, origin}, client_ip, at: see docs/policy.md",
        }}},
    }
}  # fmt: skip


@router.post("/policy/explain", openapi_extra=_BODY_DOC)
async def explain_policy(
    request: Request, services: ServicesDep, session: SessionDep, actor: AdminActor = Compliance
) -> dict[str, Any]:
    from gateway.policy.explain_customer import ScopedKey, load_customer
    from gateway.policy.explain_input import ExplainIn, document, input_problems, run_explain
    from gateway.policy.explain_key import KEY_ID_PROBLEM, KeyRecord, explain_key_id, load_key
    from gateway.policy.explain_usage import with_usage
    from gateway.policy.testing import origin_of

    try:
        data = ExplainIn.model_validate_json(await request.body())
    except ValidationError as exc:
        # Without the input: a key_id given as a whole key would echo its secret.
        errors = exc.errors(include_url=False, include_input=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None
    bundle = services.policy.current
    problems = input_problems(data, bundle)
    if problems:
        raise HTTPException(status_code=422, detail=problems)
    now = services.clock()
    keys: tuple[ScopedKey, ...] = ()
    key: KeyRecord | None = None
    if data.key_id is not None:
        key_id = explain_key_id(data.key_id)
        if key_id is None:  # the value is never echoed: it may hold a secret
            raise HTTPException(422, [{"loc": ["body", "key_id"], "msg": KEY_ID_PROBLEM,
                                       "type": "value_error"}])  # fmt: skip
        key = await load_key(session, key_id, list_in_force(services.identifier))
        if key is None:
            raise HTTPException(status_code=404, detail=f"no key {key_id}")
        principal = key.principal
    elif data.customer_id is not None:
        record = await load_customer(session, data.customer_id, now,
                                     list_in_force(services.identifier))  # fmt: skip
        if record is None:
            raise HTTPException(status_code=404, detail=f"no customer {data.customer_id}")
        principal, keys = record.principal, record.keys
    else:
        assert data.principal is not None  # ExplainIn requires one of the two
        principal = data.principal.principal()
    if data.client_ip is not None:
        origin = services.locator.locate(data.client_ip, None)
    else:
        origin = origin_of(data.request.origin)
    at = data.at or now
    # The files of the bundle in force, for file:line (a rule whose id no longer
    # sits at its index, after an edit not yet reloaded, is cited without one).
    locations = await asyncio.to_thread(rule_locations, services.settings.policy_dir)
    result = run_explain(principal, data.request, origin, bundle, at, locations)
    if isinstance(result, str):
        raise HTTPException(status_code=422, detail=[result])
    doc = document(result, bundle, keys, key)
    doc["quota"] = with_usage(doc["quota"], *await _usage(services, data, principal, result.quota))
    asked = {
        "key_id": None if key is None else key.key_id,
        "model": data.request.model, "origin": doc["origin"], "at": doc["at"],
        "decision": doc["decision"], "rule_ids": doc["rule_ids"],
        "policy_version": bundle.version,
    }  # fmt: skip
    record_admin_action(session, actor, "policy.explain", "policy_explain",
                        principal.customer_id, None, asked, now)  # fmt: skip
    await session.commit()
    return doc


async def _usage(
    services: Services, data: ExplainIn, principal: Principal, plan: QuotaPlan
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The customer's use of each limit of ``plan`` in the store this process
    meters against (memory or Redis), read without consuming anything."""
    from gateway.admin.usage import UsageReporter
    from gateway.policy.explain_usage import NO_REPORTER, NOT_A_CUSTOMER, read_usage, unread

    if data.principal is not None:
        return unread(NOT_A_CUSTOMER), []
    meter = services.meter
    if not isinstance(meter, UsageReporter):
        return unread(NO_REPORTER), []
    source: Literal["memory", "redis"] = "redis" if services.settings.redis_url else "memory"
    return await read_usage(meter, source, principal.customer_id, plan, services.clock())
