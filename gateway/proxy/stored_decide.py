"""The decision for a call on a stored response by id (``gateway.proxy.stored_routes``).

Retrieving a response is receiving model output, so it is decided as the
request that made it would be decided now: same identification, origin,
policy snapshot and quota stage as ``Pipeline._decide``, and recorded before
anything goes upstream (``Pipeline._walk``). A customer whom a directive,
sanctions status, KYC expiry or origin now refuses gets the policy's refusal
here too, not the output it could no longer ask for.

Before the policy, the binding (``gateway.proxy.stored_state``): a response
that is not the caller's, or that the gateway never relayed, is 404 in
OpenAI's shape and never forwarded, so a stranger learns nothing about it
and the upstream never sees the stranger's request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.policy.capabilities import classify
from gateway.policy.engine import decide
from gateway.policy.facts import BodyFacts, RequestFacts
from gateway.proxy.asgi_io import Receive, Scope, read_body
from gateway.proxy.body_deadline import Task
from gateway.proxy.errors import ProxyError, join_reasons
from gateway.proxy.exchange import Exchange
from gateway.proxy.quota_refusal import quota_refusal
from gateway.proxy.request_checks import check_query
from gateway.proxy.stored_routes import wants_stream
from gateway.proxy.stored_state import RESPONSES_ENDPOINT, STORED_STATE_RULE
from gateway.stages import QuotaStoreUnavailable

if TYPE_CHECKING:
    from gateway.proxy.pipeline import Pipeline


async def decide_stored(
    pipeline: Pipeline, ex: Exchange, scope: Scope, receive: Receive, task: Task
) -> None:
    """Walk a stored-response call up to its decision; raise ProxyError to refuse."""
    services = pipeline.services
    call = ex.stored
    assert call is not None
    ex.origin = pipeline._locate(ex, scope)
    try:
        # None of these calls has a body worth forwarding (cancel takes none);
        # it is still read, bounded and timed like any body, then dropped.
        await read_body(
            scope, receive, services.settings.max_body_bytes, pipeline.body_deadlines, task
        )
    except ProxyError:
        await pipeline._attribute(ex, scope)
        raise
    pipeline.fresh_policy(ex)
    ex.principal = principal = await pipeline._identify(ex, scope)
    query = scope.get("query_string") or b""
    if query:
        check_query(query)
    owners = services.response_owners
    bound = await owners.binding_of(call.response_id) if owners is not None else None
    if bound is None or bound.customer_id != principal.customer_id or bound.model is None:
        # Someone else's, unknown, or bound before models were recorded (no
        # decision can be taken for an unknown model): all the same 404.
        message = f"Response with id '{call.response_id}' not found."
        ex.refuse(STORED_STATE_RULE, message)
        raise ProxyError(404, message, code=STORED_STATE_RULE)
    now = services.clock()
    bundle = ex.bundle
    # A call by id has no body to classify: what it hands over is the output
    # of the create, so it carries the capabilities that create was decided
    # with (tools, code, long outputs: from the binding) besides what the
    # model itself does. What is asked now is whether this customer may still
    # receive that output, here and now, so it is decided as that request on
    # the route that made it (``endpoint_in: [/v1/responses]`` holds), and a
    # directive added since that refuses one of its capabilities refuses it.
    # A binding from before they were recorded has None: the model's own only.
    body = BodyFacts(model=bound.model, stream=call.operation == "retrieve" and wants_stream(query))
    ex.body = body
    facts = RequestFacts(
        endpoint=RESPONSES_ENDPOINT,
        api="openai",
        body=body,
        origin=ex.origin,
        capabilities=classify(body, bundle) | (bound.capabilities or frozenset()),
    )
    ex.facts = facts
    ex.decision = decision = decide(principal, facts, bundle, now)
    if not decision.allowed:
        reason = join_reasons(decision.reasons) or "denied by policy"
        raise ProxyError(decision.deny_status, reason, code=decision.rule_ids[0])
    if decision.quota is not None:
        # Counted as a request in every request window (and a stream slot when
        # streamed), with no tokens: the tokens were charged when the response
        # was created (docs/quotas.md, background mode), and the usage this
        # answer shows again is not charged a second time (``gateway.proxy.settle``).
        try:
            ex.admission = admission = await services.meter.admit(
                principal.customer_id, decision.quota, body.stream, 0, now
            )
        except QuotaStoreUnavailable:
            ex.refuse("quota-store-unavailable", "the quota store is unreachable")
            raise
        if not admission.allowed:
            raise quota_refusal(ex, admission)
