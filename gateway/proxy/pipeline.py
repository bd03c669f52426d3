"""The request corridor for the proxied model API.

    identify -> locate -> classify -> decide -> meter -> record -> forward -> settle

Every request that reaches a proxied route leaves exactly one decision record,
committed before anything goes upstream. Any stage may refuse by raising
``ProxyError``; the refusal is recorded, then rendered in the client's API
shape. If the record itself cannot be committed, the client gets 503 and the
request is not forwarded: the gateway fails closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from gateway.geo.origin import Origin
from gateway.head import as_get
from gateway.identity.bearer import parse_authorization
from gateway.identity.principal import Principal
from gateway.ops import hooks  # ops: metrics + access log
from gateway.policy.capabilities import classify
from gateway.policy.engine import decide
from gateway.policy.facts import ApiShape, RequestFacts
from gateway.policy.quota_plans import default_output_tokens
from gateway.proxy.asgi_io import (
    JSON_CONTENT_TYPE,
    ClientGone,
    Receive,
    Scope,
    Send,
    header,
    joined_header,
    read_body,
)
from gateway.proxy.asgi_io import send_response as send_raw
from gateway.proxy.batch_decide import decide_batch, inner_records
from gateway.proxy.batch_list import list_batches
from gateway.proxy.batch_routes import BatchCall
from gateway.proxy.body import parse_request_body
from gateway.proxy.body_deadline import BodyDeadlines, Task
from gateway.proxy.errors import (
    ProxyError,
    join_reasons,
    render_error,
    request_id_header,
    rule_for_status,
    unavailable,
)
from gateway.proxy.exchange import Exchange
from gateway.proxy.foreign_ids import check_continued, check_references
from gateway.proxy.forward import Forwarder
from gateway.proxy.header_limits import forwarded_for
from gateway.proxy.models_list import answer_models
from gateway.proxy.probes import RULE as PROBE_RULE
from gateway.proxy.quota_refusal import quota_refusal
from gateway.proxy.request_checks import check_encoding, check_query
from gateway.proxy.reserve import tokens_to_reserve
from gateway.proxy.stored_decide import decide_stored
from gateway.proxy.stored_routes import StoredCall
from gateway.services import Services
from gateway.stages import (
    AuditUnavailable,
    AuthenticationFailed,
    QuotaStoreUnavailable,
    StageUnavailable,
)

log = logging.getLogger("gateway.proxy")

Decider = Callable[["Exchange", Scope, Receive, Task], Awaitable[None]]
"""Walks one request's stages up to its decision (``Pipeline._decide``)."""

_KEEP_PROMPT_CHARS = 4096
"""Prompt text longer than this is dropped from the exchange once decided."""


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


class Pipeline:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.forwarder = Forwarder(services)
        self.body_deadlines = BodyDeadlines(services.settings.body_read_timeout_seconds)
        # Bound once: the hot path does not make a bound method per request.
        self._decide_body: Decider = self._decide
        self._decide_by_id: Decider = self._decide_stored
        self._decide_batch_call: Decider = self._decide_batch

    async def handle(self, scope: Scope, receive: Receive, send: Send, api: ApiShape) -> None:
        ex = self._exchange(scope, api)
        await self._announced(ex, self._walk(ex, scope, receive, send, self._decide_body))

    async def handle_stored(
        self, scope: Scope, receive: Receive, send: Send, call: StoredCall
    ) -> None:
        """A call on a stored Responses answer by id (``gateway.proxy.stored_routes``):
        decided, recorded and forwarded as any request is, by ``decide_stored``."""
        ex = self._exchange(scope, "openai")
        ex.endpoint = call.route
        ex.stored = call
        await self._announced(ex, self._walk(ex, scope, receive, send, self._decide_by_id))

    async def _decide_stored(
        self, ex: Exchange, scope: Scope, receive: Receive, task: Task
    ) -> None:
        await decide_stored(self, ex, scope, receive, task)

    async def handle_batch(
        self, scope: Scope, receive: Receive, send: Send, call: BatchCall
    ) -> None:
        """A Message Batches call (``gateway.proxy.batch_routes``): decided by
        ``decide_batch`` (every inner request of a create), recorded, forwarded;
        the list is answered here, from the caller's own batches. A HEAD
        runs as the GET, decided, recorded and forwarded as one, and only
        its status and headers go out (``gateway.head``)."""
        if call.head:
            scope, send = as_get(scope, send)
        ex = self._exchange(scope, "anthropic")
        ex.endpoint = call.route
        ex.batch = call
        if call.operation == "list":
            await self._announced(ex, list_batches(self, ex, scope, send))
            return
        await self._announced(ex, self._walk(ex, scope, receive, send, self._decide_batch_call))

    async def _decide_batch(
        self, ex: Exchange, scope: Scope, receive: Receive, task: Task
    ) -> None:
        await decide_batch(self, ex, scope, receive, task)

    async def list_models(self, scope: Scope, send: Send, api: ApiShape) -> None:
        """``GET`` or ``HEAD /v1/models``: the same decision and record, HEAD without content."""
        ex = self._exchange(scope, api)
        ex.head = scope["method"] == "HEAD"
        await self._announced(ex, answer_models(self, ex, scope, send))

    async def refuse_route(
        self, scope: Scope, send: Send, api: ApiShape, refusal: ProxyError
    ) -> None:
        """A ``/v1/*`` request no route serves (404, 405): recorded, then answered."""
        ex = self._exchange(scope, api)
        ex.head = scope["method"] == "HEAD"
        await self._announced(ex, self._refuse_route(ex, scope, send, refusal))

    async def _refuse_route(
        self, ex: Exchange, scope: Scope, send: Send, refusal: ProxyError
    ) -> None:
        try:
            ex.origin = self._locate(ex, scope)
        except ProxyError as too_large:
            refusal = too_large
        await self._attribute(ex, scope)
        await self._refuse(ex, send, refusal)

    async def _attribute(self, ex: Exchange, scope: Scope) -> None:
        """Name the caller of a refusal decided before its credential was checked.

        An unknown route or method (404, 405) and a body over the limit or with
        a bad Content-Length (413, 400) are refused on the request alone, so
        without this their records named nobody: the audit log could not say
        who probed routes or sent oversized bodies. A valid credential now
        names its customer and key (through the identifier's cache, as every
        request does).

        The answer stays the refusal it was, whatever the credential: it does
        not depend on who asks, SPEC section 2's 401 ("no or bad credential")
        is the answer to a request the proxied API would otherwise serve, and
        turning these into 401s would tell a client with a mistyped path (or
        an oversized body) to look at its key. A credential that fails leaves
        the record without customer or key: a key id is only named once its
        secret has been verified (the 401 record keeps the claimed id).
        """
        try:
            ex.principal = await self._identify(ex, scope)
        except ProxyError:
            ex.key_id = None
        except StageUnavailable as exc:
            # The refusal does not need the customer: it is still recorded and
            # answered, unattributed, rather than turned into a 503.
            log.warning("a %s refusal is recorded without its caller: %s", ex.endpoint, exc)

    def _locate(self, ex: Exchange, scope: Scope) -> Origin:
        """Where the client is; ProxyError(431) for headers over their bounds.

        Every X-Forwarded-For line counts (``header_limits.forwarded_for``).
        """
        try:
            forwarded = forwarded_for(scope["headers"])
        except ProxyError:
            # The header that would name the client is the one refused: the
            # record keeps the peer's address, and an unknown origin.
            ex.origin = Origin(ex.peer_ip)
            raise
        return self.services.locator.locate(ex.peer_ip, forwarded)

    def _exchange(self, scope: Scope, api: ApiShape) -> Exchange:
        # The snapshot a refusal before the body is recorded under; a request
        # whose body arrives takes it again then (``fresh_policy``).
        services = self.services
        return Exchange(
            api=api,
            endpoint=scope["path"],
            peer_ip=_peer(scope),
            bundle=services.policy.current,
        )

    def fresh_policy(self, ex: Exchange) -> None:
        """Take the bundle in force now, once the body has arrived: the request
        keeps it to the end (decision, record, stream), whatever reloads after.

        Not the one in force when its headers came: the body may take up to
        ``body_read_timeout_seconds`` (an hour at most) to arrive, and a
        request opened before a reload and completed after it was decided
        under the bundle the reload had replaced."""
        ex.bundle = self.services.policy.current

    async def _announced(self, ex: Exchange, walk: Coroutine[Any, Any, None]) -> None:
        """Run ``walk`` with this request announced to the audit sink.

        Group-commit hint: the request will record a decision shortly, so a
        commit about to start may wait for it (bounded by
        GATEWAY_AUDIT_BATCH_WAIT_MS). A walk that ends without recording (the
        client left, a bug) takes the announcement back.
        """
        self.services.audit.expect_decision()
        try:
            await walk
        finally:
            if not ex.recorded:
                self.services.audit.cancel_expected()

    async def _walk(
        self, ex: Exchange, scope: Scope, receive: Receive, send: Send, decide: Decider
    ) -> None:
        services = self.services
        # Looked up once: the body deadline and the forwarder's disconnect
        # watch both cancel this task (current_task() is not free).
        task = asyncio.current_task()
        assert task is not None
        try:
            await decide(ex, scope, receive, task)
        except ClientGone:
            # The body never arrived whole: nothing was decided, nobody to answer.
            log.debug("client left before its request body was complete")
            return
        except ProxyError as refusal:
            await self._refuse(ex, send, refusal)
            return
        except StageUnavailable as exc:
            await self._refuse(ex, send, unavailable(exc))
            return
        t_audit = time.perf_counter()
        try:
            await self._record(ex, 200)
        except AuditUnavailable as exc:
            log.error("audit store unavailable, refusing allowed request %s: %s", ex.id, exc)
            if ex.admission is not None:
                await services.meter.settle(ex.admission, None)
            for extra in ex.extra_admissions or ():  # a batch's other quota plans
                await services.meter.settle(extra, None)
            await self._send_error(ex, send, unavailable(exc))
            hooks.refused(ex, 503)  # ops hook
            return
        hooks.audit_waited(time.perf_counter() - t_audit)  # ops hook
        await self.forwarder.forward(ex, scope, receive, send, task)

    async def _record(self, ex: Exchange, status: int) -> None:
        """Commit the decision record (raises AuditUnavailable)."""
        ex.stamp(self.services.clock())
        record = ex.to_record(status)
        ex.recorded = True  # from here the sink has taken back this request's expectation
        if ex.inner is not None and status < 400:
            # A batch create: its inner requests' records go in the same group
            # commit, all committed before the batch is forwarded.
            await self.services.audit.record_many([record, *inner_records(ex)])
            return
        await self.services.audit.record(record)

    async def _identify(self, ex: Exchange, scope: Scope) -> Principal:
        try:
            bearer, problem = parse_authorization(header(scope, b"authorization"))
            return await self.services.identifier.identify(
                bearer, header(scope, b"x-api-key"), problem
            )
        except AuthenticationFailed as exc:
            ex.key_id = exc.key_id
            raise ProxyError(401, exc.message, code="invalid_api_key") from None

    async def _decide(self, ex: Exchange, scope: Scope, receive: Receive, task: Task) -> None:
        """Walk the stages up to the decision; raise ProxyError to refuse.

        The body's bytes go to ``ex.request_bytes`` for the forwarder.
        """
        services = self.services
        ex.origin = self._locate(ex, scope)
        try:
            raw = await read_body(
                scope, receive, services.settings.max_body_bytes, self.body_deadlines, task
            )
        except ProxyError:
            await self._attribute(ex, scope)
            raise
        self.fresh_policy(ex)
        ex.principal = principal = await self._identify(ex, scope)
        check_encoding(header(scope, b"content-type"), joined_header(scope, b"content-encoding"))
        if scope.get("query_string"):
            check_query(scope["query_string"])
        now = services.clock()
        bundle = ex.bundle
        # The parsed body, re-serialised and bounded, is what goes upstream (body.py
        # and facts.with_output_bound say why).
        body, ex.request_bytes = parse_request_body(
            raw, ex.endpoint, lambda: default_output_tokens(principal, bundle, now)
        )
        ex.body = body
        del raw  # from here the exchange holds the only copy (see Forwarder.forward)
        facts = RequestFacts(
            endpoint=ex.endpoint,
            api=ex.api,
            body=body,
            origin=ex.origin,
            capabilities=classify(body, bundle),
        )
        ex.facts = facts
        ex.decision = decision = decide(principal, facts, bundle, now)
        if len(body.prompt_text) > _KEEP_PROMPT_CHARS:
            # The text was needed to classify and decide, and the record keeps
            # its hash; a long prompt is not held for the minutes a stream lasts.
            ex.body = body = replace(body, prompt_text="")
            ex.facts = replace(facts, body=body)
        if not decision.allowed:
            reason = join_reasons(decision.reasons) or "denied by policy"
            raise ProxyError(decision.deny_status, reason, code=decision.rule_ids[0])
        context = 0
        customer_id = principal.customer_id
        if body.continues:
            context = await check_continued(self.services, ex, customer_id, body.continues)
        if body.references:
            await check_references(self.services, ex, customer_id, body.references)
        if decision.quota is not None:
            wanted = tokens_to_reserve(ex.endpoint, body, decision.quota.default_max_tokens)
            wanted += context
            try:
                ex.admission = admission = await services.meter.admit(
                    principal.customer_id, decision.quota, body.stream, wanted, now
                )
            except QuotaStoreUnavailable:
                ex.refuse("quota-store-unavailable", "the quota store is unreachable")
                raise
            if not admission.allowed:
                raise quota_refusal(ex, admission)

    async def _refuse(self, ex: Exchange, send: Send, refusal: ProxyError) -> None:
        """Record the refusal, then answer it (503 if it cannot be recorded).

        A caller not identified past its address's limit gets 429 instead,
        counted in a summary record (``gateway.proxy.probes``)."""
        probes = self.services.probes
        if probes is not None and ex.principal is None and 400 <= refusal.status < 500:
            client_ip = ex.origin.client_ip if ex.origin is not None else ex.peer_ip
            limited = await probes.admit(client_ip, refusal.status, ex.endpoint)
            if limited is not None:
                ex.id = limited.record_id
                answer = limited.refusal()
                ex.refuse(PROBE_RULE, answer.message)  # for the metrics and access log
                await self._send_error(ex, send, answer)
                hooks.refused(ex, 429)  # ops hook
                return
        if not ex.rule_ids and ex.decision is None:
            ex.refuse(rule_for_status(refusal.status), refusal.message)
        try:
            await self._record(ex, refusal.status)
        except AuditUnavailable as exc:
            log.error("audit store unavailable, cannot record refusal %s: %s", ex.id, exc)
            refusal = unavailable(exc)
        await self._send_error(ex, send, refusal)
        hooks.refused(ex, refusal.status)  # ops hook

    async def _send_error(self, ex: Exchange, send: Send, refusal: ProxyError) -> None:
        headers = [
            JSON_CONTENT_TYPE,
            (b"x-gateway-decision-id", ex.id.encode()),
            (b"x-gateway-policy-version", ex.policy_version.encode()),
            request_id_header(ex.api, ex.id),
        ]
        headers.extend((k.encode(), v.encode()) for k, v in refusal.headers.items())
        await send_raw(send, refusal.status, headers, render_error(ex.api, refusal), ex.head)
