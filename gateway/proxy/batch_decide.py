"""The decisions for Message Batches calls (``gateway.proxy.batch_routes``).

A batch is many ``/v1/messages`` requests in one: the cheapest way to query
a model in bulk, so it must not be a way around the policy. Its create is
decided request by request, each exactly as a single ``/v1/messages``
request with the same params would be (the same body parsing, classifiers
and engine); one refused request refuses the whole batch, naming its
``custom_id`` and the rule, and nothing goes upstream. Each inner request
gets its own decision record, committed with the create's in one group
commit before the batch is forwarded (``inner_records``); the quota stage
takes N requests and the sum of their token reservations.

Calls on a batch by id are decided as ``/v1/messages`` requests for each of
its models with the union of the capabilities its requests were decided
with (kept in the binding): a customer whom a directive, suspension,
sanctions status or origin now refuses, or a directive refusing one of
those capabilities, does not get the results. Before the
policy, the binding (``gateway.proxy.batch_state``): a batch that is not the
caller's, or was never relayed, is 404 and never forwarded.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gateway.audit.ids import new_id
from gateway.audit.record import DecisionRecord
from gateway.policy.capabilities import classify
from gateway.policy.decision import Decision, QuotaPlan
from gateway.policy.engine import decide
from gateway.policy.facts import BodyFacts, RequestFacts
from gateway.policy.quota_plans import default_output_tokens
from gateway.proxy.asgi_io import Receive, Scope, header, joined_header
from gateway.proxy.batch_charge import groups_of
from gateway.proxy.batch_requests import requests_of
from gateway.proxy.batch_state import BATCH_NOT_FOUND_RULE
from gateway.proxy.body import parse_request_params
from gateway.proxy.body_deadline import Task
from gateway.proxy.call_prologue import read_and_identify
from gateway.proxy.errors import ProxyError, join_reasons
from gateway.proxy.exchange import Exchange
from gateway.proxy.foreign_ids import check_continued, check_references
from gateway.proxy.nesting import forwardable
from gateway.proxy.quota_refusal import quota_refusal
from gateway.proxy.request_checks import check_encoding
from gateway.proxy.reserve import tokens_to_reserve
from gateway.stages import Admission, QuotaStoreUnavailable

if TYPE_CHECKING:
    from gateway.proxy.pipeline import Pipeline

MESSAGES_ENDPOINT = "/v1/messages"
"""What every batch call is decided as (``endpoint_in: [/v1/messages]`` holds)."""
_YIELD_EVERY = 200
"""Inner requests decided between yields to the event loop (each takes tens of us)."""


async def decide_batch(
    pipeline: Pipeline, ex: Exchange, scope: Scope, receive: Receive, task: Task
) -> None:
    """Walk a Message Batches call up to its decision; raise ProxyError to refuse."""
    raw, _ = await read_and_identify(pipeline, ex, scope, receive, task)
    call = ex.batch
    assert call is not None
    if call.operation == "create":
        check_encoding(header(scope, b"content-type"), joined_header(scope, b"content-encoding"))
        await _decide_create(pipeline, ex, raw)
    else:
        # No call by id carries a body worth forwarding (cancel takes none).
        await _decide_by_id(pipeline, ex)


async def _decide_create(pipeline: Pipeline, ex: Exchange, raw: bytes) -> None:
    services = pipeline.services
    principal = ex.principal
    assert principal is not None and ex.origin is not None
    doc, items = requests_of(raw)
    del raw
    now = services.clock()
    bundle = ex.bundle
    inner: list[Exchange] = []
    for index, (custom_id, params) in enumerate(items):
        if index and index % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a 10,000-request batch does not hold the loop
        try:
            body = parse_request_params(
                params, MESSAGES_ENDPOINT, lambda: default_output_tokens(principal, bundle, now)
            )
        except ProxyError as bad:
            message = f"request '{custom_id}': {bad.message}"
            raise ProxyError(400, message, param=bad.param) from None
        if body.stream:
            raise ProxyError(400, f"request '{custom_id}': a batch request cannot stream")
        facts = RequestFacts(
            endpoint=MESSAGES_ENDPOINT,
            api="anthropic",
            body=body,
            origin=ex.origin,
            capabilities=classify(body, bundle),
        )
        decision = decide(principal, facts, bundle, now)
        # Classified and decided: the record keeps the prompt's hash, not its text.
        body = replace(body, prompt_text="")
        one = Exchange(api="anthropic", endpoint=ex.endpoint, peer_ip=ex.peer_ip, bundle=bundle,
                       principal=principal, origin=ex.origin, body=body,
                       facts=replace(facts, body=body), decision=decision)  # fmt: skip
        one.batch_facts = {"operation": "create", "custom_id": custom_id}
        if not decision.allowed:
            # The whole batch is refused, recorded with the refused request's facts.
            ex.body, ex.facts, ex.decision = one.body, one.facts, decision
            ex.batch_facts = {"operation": "create", "requests": len(items),
                              "refused_custom_id": custom_id}  # fmt: skip
            reason = join_reasons(decision.reasons) or "denied by policy"
            rule = decision.rule_ids[0]
            raise ProxyError(
                decision.deny_status, f"request '{custom_id}' refused ({rule}): {reason}", code=rule
            )
        if body.continues:
            await check_continued(pipeline.services, ex, principal.customer_id, body.continues)
        if body.references:
            await check_references(pipeline.services, ex, principal.customer_id, body.references)
        inner.append(one)
    models = tuple(dict.fromkeys(one.body.model for one in inner if one.body is not None))
    if len({services.upstream.base_for(bundle, model) for model in models}) > 1:
        raise ProxyError(400, "a batch's requests must all name models served by one upstream")
    capabilities = frozenset().union(*(one.facts.capabilities for one in inner if one.facts))
    first = inner[0]
    assert first.decision is not None and first.facts is not None
    ex.body = body = BodyFacts(model=models[0])
    ex.facts = replace(first.facts, body=body, capabilities=capabilities)
    ex.decision = replace(first.decision, capabilities=_union_capabilities(inner))
    ex.batch_facts = {"operation": "create", "requests": len(inner), "models": list(models)}
    ex.inner = inner
    # The params were bounded in place (a defaulted max_tokens written in):
    # the upstream gets the batch as decided, re-serialised.
    ex.request_bytes = forwardable(doc)  # kept for the exchange: exact-size
    await _admit_batch(pipeline, ex, inner, now)


def _union_capabilities(inner: list[Exchange]) -> frozenset[str]:
    found: set[str] = set()
    for one in inner:
        if one.decision is not None:
            found |= one.decision.capabilities
    return frozenset(found)


async def _admit_batch(pipeline: Pipeline, ex: Exchange, inner: list[Exchange], now: Any) -> None:
    """N requests and the sum of their reservations, per quota plan (a plan is
    the tier's limits for a set of capabilities: most batches have one)."""
    meter = pipeline.services.meter
    assert ex.principal is not None
    groups: dict[int, tuple[QuotaPlan, list[int]]] = {}
    reserved: list[tuple[frozenset[str], int, str]] = []
    for one in inner:
        decision: Decision | None = one.decision
        if decision is None or decision.quota is None or one.body is None:
            continue
        plan = decision.quota
        wanted = tokens_to_reserve(MESSAGES_ENDPOINT, one.body, plan.default_max_tokens)
        groups.setdefault(id(plan), (plan, []))[1].append(wanted)
        metered = any(limit.kind.startswith("tokens_") for limit in plan.limits)
        if metered and one.facts is not None and one.batch_facts is not None:
            # The plan is the tier's for these capabilities: a results download
            # charges what they used beyond ``wanted`` to the same windows.
            reserved.append((one.facts.capabilities, wanted, one.batch_facts["custom_id"]))
    admissions: list[Admission] = []
    for plan, reservations in groups.values():
        try:
            admission = await meter.admit(
                ex.principal.customer_id, plan, False, sum(reservations), now,
                requests=len(reservations),
            )  # fmt: skip
        except QuotaStoreUnavailable:
            await _release(pipeline, admissions)
            ex.refuse("quota-store-unavailable", "the quota store is unreachable")
            raise
        if not admission.allowed:
            await _release(pipeline, admissions)
            raise quota_refusal(ex, admission)
        admissions.append(admission)
    if admissions:
        ex.admission = admissions[0]
        ex.extra_admissions = admissions[1:] or None
        ex.batch_reserved = groups_of(reserved, of_all=len(reserved) == len(inner)) or None


async def _release(pipeline: Pipeline, admissions: list[Admission]) -> None:
    for admission in admissions:
        await pipeline.services.meter.settle(admission, None)


async def _decide_by_id(pipeline: Pipeline, ex: Exchange) -> None:
    services = pipeline.services
    principal = ex.principal
    call = ex.batch
    assert principal is not None and call is not None and call.batch_id is not None
    assert ex.origin is not None
    ex.batch_facts = {"operation": call.operation, "id": call.batch_id}
    owners = services.batch_owners
    bound = await owners.binding_of(call.batch_id) if owners is not None else None
    if bound is None or bound.customer_id != principal.customer_id or not bound.models:
        # Someone else's or unknown: the same 404, so a stranger learns nothing.
        message = f"Message batch '{call.batch_id}' not found."
        ex.refuse(BATCH_NOT_FOUND_RULE, message)
        raise ProxyError(404, message, code=BATCH_NOT_FOUND_RULE)
    now = services.clock()
    bundle = ex.bundle
    # The results are its requests' output: decided with what they carried
    # (a binding from before capabilities were recorded: the models' own only).
    carried = bound.capabilities or frozenset()
    allowed: Decision | None = None
    for model in bound.models:
        body = BodyFacts(model=model)
        facts = RequestFacts(
            endpoint=MESSAGES_ENDPOINT,
            api="anthropic",
            body=body,
            origin=ex.origin,
            capabilities=classify(body, bundle) | carried,
        )
        ex.body, ex.facts = body, facts
        ex.decision = decision = decide(principal, facts, bundle, now)
        if not decision.allowed:
            reason = join_reasons(decision.reasons) or "denied by policy"
            raise ProxyError(decision.deny_status, reason, code=decision.rule_ids[0])
        allowed = allowed or decision
    assert allowed is not None
    ex.body = BodyFacts(model=bound.models[0])
    ex.decision = allowed
    if allowed.quota is not None:
        # One request in every request window, no tokens: the batch's tokens
        # were reserved at its create and reading its results does not refund
        # or charge them again (docs/quotas.md).
        try:
            ex.admission = admission = await services.meter.admit(
                principal.customer_id, allowed.quota, False, 0, now
            )
        except QuotaStoreUnavailable:
            ex.refuse("quota-store-unavailable", "the quota store is unreachable")
            raise
        if not admission.allowed:
            raise quota_refusal(ex, admission)
    if call.operation == "results":
        # What its create reserved, to charge what the results show beyond it.
        ex.batch_reserved = bound.unsettled


def inner_records(ex: Exchange) -> list[DecisionRecord]:
    """The create's inner requests' records, stamped with its time and naming
    its decision id (the batch id is not known until the upstream answers:
    the ``batch_bound`` event and the binding link the two)."""
    records: list[DecisionRecord] = []
    for one in ex.inner or ():
        one.id = new_id()
        one.ts = ex.ts
        if one.batch_facts is not None:
            one.batch_facts["create_decision_id"] = ex.id
        records.append(one.to_record(200))
    return records
