"""What ``policy explain`` takes (CLI and admin API alike) and the document it answers.

The inputs are a policy test case's (``testing.PrincipalIn``/``RequestIn``),
so a question asked here can be pasted into ``policies/tests/`` as a case,
plus ``customer_id`` (the record in the database) and ``client_ip`` (located
by the gateway's geo stage).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from gateway.geo.origin import Origin
from gateway.identity.principal import Principal
from gateway.kyc.schemas import rfc3339
from gateway.policy.caserecord import record_problems
from gateway.policy.compiled import CompiledBundle
from gateway.policy.control import control_explanation
from gateway.policy.explain import Explanation, explain
from gateway.policy.explain_customer import ScopedKey, key_scope_document
from gateway.policy.explain_key import AUTHENTICATION_FAILED, KeyRecord, key_scope_for
from gateway.policy.schema_types import AwareTimestamp
from gateway.policy.testing import CaseIn, ExpectIn, PrincipalIn, RequestIn, request_facts
from gateway.policy.yamlsrc import format_path


class ExplainIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    customer_id: str | None = None
    key_id: str | None = None
    """An API key's id (or ``gk_<id>``): its customer, through its scope. Never the secret."""
    principal: PrincipalIn | None = None
    request: RequestIn
    client_ip: str | None = None
    """Located with the gateway's geo settings; ``request.origin`` instead gives the place."""
    at: AwareTimestamp | None = None

    @field_validator("client_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)  # ValueError names the text
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> ExplainIn:
        given = (self.customer_id, self.principal, self.key_id)
        if sum(g is not None for g in given) != 1:
            raise ValueError("give exactly one of customer_id, key_id and principal")
        if self.client_ip is not None and self.request.origin is not None:
            raise ValueError("give either client_ip or request.origin, not both")
        return self


def input_problems(data: ExplainIn, bundle: CompiledBundle) -> list[str]:
    """Codes no record could hold and capabilities the bundle lacks, as policy
    tests check them (``caserecord``), each with its path."""
    case = CaseIn(
        name="explain",
        principal=data.principal or PrincipalIn(),
        request=data.request,
        expect=ExpectIn(decision="allow"),
    )
    problems = [f"{format_path(where)}: {message}" for where, message in record_problems(case)]
    known = set(bundle.capability_names())
    for cap in data.request.capabilities or ():
        if cap not in known:
            problems.append(f"request.capabilities: unknown capability '{cap}'")
    if data.request.body is not None and data.request.capabilities is not None:
        problems.append("request: give either 'body' or 'capabilities', not both")
    return problems


def run_explain(
    principal: Principal,
    req: RequestIn,
    origin: Origin,
    bundle: CompiledBundle,
    at: datetime,
    locations: tuple[tuple[str, str, int] | None, ...],
) -> Explanation | str:
    """The explanation, or why the request could not be built (a usage error)."""
    facts = request_facts(principal, req, bundle, at, origin)
    if isinstance(facts, str):
        return facts
    return explain(principal, facts, bundle, at, locations)


def document(
    ex: Explanation,
    bundle: CompiledBundle,
    keys: tuple[ScopedKey, ...] = (),
    key: KeyRecord | None = None,
) -> dict[str, Any]:
    """The explanation as JSON; through ``key``, the verdict of a request on it
    (a key revoked or expired at ``ex.at`` is a 401 before any policy, and the
    engine's own verdict is then kept as ``policy_decision``)."""
    d, p, f = ex.decision, ex.principal, ex.facts
    model = bundle.models.get(f.body.model)
    entitled = model is not None and d.effective_tier in model.tiers
    key_refused = None if key is None else key.refusal(ex.at)
    verdict: dict[str, Any] = {
        "decision": d.decision, "status": ex.status,
        "rule_ids": list(d.rule_ids), "reasons": list(d.reasons),
    }  # fmt: skip
    policy_decision = None
    if key_refused is not None:
        policy_decision = verdict
        verdict = {"decision": "deny", "status": 401, "rule_ids": [AUTHENTICATION_FAILED],
                   "reasons": [key_refused]}  # fmt: skip
    return {
        **verdict,
        "policy_decision": policy_decision,
        "report_rule_ids": list(d.report_rule_ids),
        "assigned_tier": p.tier,
        "effective_tier": d.effective_tier,
        "tier_demotion": d.tier_demotion,
        "policy_version": d.policy_version,
        "at": rfc3339(ex.at),
        "principal": {
            "id": p.customer_id, "kind": p.kind, "tier": p.tier, "kyc_level": p.kyc_level,
            "citizenships": sorted(p.citizenships), "residence": p.residence,
            "incorporated_in": p.incorporated_in, "us_person": p.is_us_person,
            "attributes": sorted(p.attributes), "sanctions_status": p.sanctions_status,
            "status": p.status,
        },
        "request": {"model": f.body.model, "endpoint": f.endpoint, "stream": f.body.stream},
        "capabilities": sorted(f.capabilities),
        "origin": {"country": f.origin.country, "region": f.origin.region,
                   "client_ip": f.origin.client_ip},
        "model": {
            "name": f.body.model, "defined": model is not None,
            "tiers": sorted(model.tiers) if model is not None else [],
            "entitled": entitled,
        },
        "quota": {
            "tier": ex.quota.tier,
            "limits": [{"capability": q.capability, "kind": q.kind, "limit": q.limit}
                       for q in ex.quota.limits],
            "default_max_tokens": ex.quota.default_max_tokens,
            "fail_open": ex.quota.fail_open,
        },
        "key_scope": (key_scope_document(keys, f) if key is None
                      else key_scope_for(key, f, d, ex.at)),
        # What the decision record would say of control through a chain.
        "ownership_control": control_explanation(p, d, bundle, f, ex.at),
        "trace_agrees": ex.trace_agrees,
        "trace": [r.document() for r in ex.trace],
    }  # fmt: skip
