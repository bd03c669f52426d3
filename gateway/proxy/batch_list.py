"""``GET /v1/messages/batches``: the caller's own batches, never the account's.

The upstream lists every batch of its one account, which holds every
customer's: relaying its list would show each customer the others' batch
ids and request counts. So the list is paged from the gateway's bindings
(``BatchOwners.page``: ``after_id``, ``before_id``, ``limit`` as Anthropic
pages) and each listed batch is fetched from the upstream by id. A batch the
upstream no longer knows (expired, deleted) is left out.

Listing reveals no model output, so it is decided as ``/v1/models`` is: the
account itself must be servable (not suspended, not a confirmed sanctions
match), the key from this origin must be able to use some model now (else
the refusal a request would get: ``gateway.proxy.batch_visible``), and only
batches whose models it may use are listed. The list is recorded before
anything goes upstream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import orjson

from gateway.ops import hooks  # ops: metrics + access log
from gateway.policy.engine import account_refusal
from gateway.proxy.asgi_io import JSON_CONTENT_TYPE, Scope, Send
from gateway.proxy.asgi_io import send_response as send_raw
from gateway.proxy.batch_answer import with_gateway_results_url
from gateway.proxy.batch_routes import BATCHES_ROUTE
from gateway.proxy.batch_state import BatchPage
from gateway.proxy.batch_visible import ListPolicy, visible_page
from gateway.proxy.errors import ProxyError, join_reasons, request_id_header
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import upstream_request_headers
from gateway.stages import AuditUnavailable, StageUnavailable

if TYPE_CHECKING:
    from gateway.proxy.pipeline import Pipeline

LIST_RULE = "message-batches-list"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def _page_query(query_string: bytes) -> tuple[str | None, str | None, int]:
    after_id = before_id = None
    limit = DEFAULT_LIMIT
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name == "after_id":
            after_id = value
        elif name == "before_id":
            before_id = value
        elif name == "limit":
            if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
                raise ProxyError(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
            limit = int(value)
    if after_id is not None and before_id is not None:
        raise ProxyError(400, "give after_id or before_id, not both")
    return after_id, before_id, limit


async def list_batches(pipeline: Pipeline, ex: Exchange, scope: Scope, send: Send) -> None:
    services = pipeline.services
    try:
        ex.origin = pipeline._locate(ex, scope)
        ex.principal = principal = await pipeline._identify(ex, scope)
        after_id, before_id, limit = _page_query(scope.get("query_string") or b"")
        refused = account_refusal(principal)
        if refused is not None:
            ex.refuse(*refused)
            raise ProxyError(403, refused[1], code=refused[0])
        assert ex.origin is not None
        policy = ListPolicy(principal, ex.bundle, services.clock(), ex.origin)
        denied = policy.refusal()
        if denied is not None:
            # No model is open to this key from here (a sanctioned origin, a
            # directive): refused as a request would be, not listed nothing.
            facts, decision = denied
            ex.body, ex.facts, ex.decision = facts.body, facts, decision
            reason = join_reasons(decision.reasons) or "denied by policy"
            raise ProxyError(decision.deny_status, reason, code=decision.rule_ids[0])
        owners = services.batch_owners
        page = BatchPage([], False)
        if owners is not None:
            page = await visible_page(
                owners, principal.customer_id, after_id, before_id, limit, policy
            )
        ids = [batch.batch_id for batch in page.batches]
        ex.refuse(LIST_RULE, f"listed {len(ids)} of the caller's batches: {', '.join(ids)}")
        ex.batch_facts = {"operation": "list", "ids": ids}
        await pipeline._record(ex, 200)
        fetched = [await _fetch(pipeline, ex, scope, b.batch_id, b.models) for b in page.batches]
        data = [doc for doc in fetched if doc is not None]
    except ProxyError as refusal:
        if ex.recorded:
            await pipeline._send_error(ex, send, refusal)
            hooks.refused(ex, refusal.status)  # ops hook
        else:
            await pipeline._refuse(ex, send, refusal)
        return
    except AuditUnavailable as exc:
        await pipeline._send_error(ex, send, _unavailable(exc))
        return
    except StageUnavailable as exc:
        await pipeline._refuse(ex, send, _unavailable(exc))
        return
    answer = {
        "data": data,
        "has_more": page.has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    headers = [
        JSON_CONTENT_TYPE,
        (b"x-gateway-decision-id", ex.id.encode()),
        (b"x-gateway-policy-version", ex.policy_version.encode()),
        request_id_header(ex.api, ex.id),
    ]
    await send_raw(send, 200, headers, orjson.dumps(answer))
    hooks.finished(ex, 200, None, None)  # ops hook


async def _fetch(
    pipeline: Pipeline, ex: Exchange, scope: Scope, batch_id: str, models: tuple[str, ...]
) -> dict[str, object] | None:
    """One listed batch as the upstream has it now (None: it no longer knows it)."""
    services = pipeline.services
    assert ex.principal is not None
    identity = {"x-gateway-customer": ex.principal.customer_id, "x-gateway-decision-id": ex.id}
    headers = upstream_request_headers(
        scope["headers"], "anthropic", services.settings.upstream_api_key, identity
    )
    base = services.upstream.base_for(ex.bundle, models[0]) if models else None
    url = services.upstream.url_for(f"{BATCHES_ROUTE}/{batch_id}", base)
    response = await services.upstream.send("GET", url, headers, None)
    try:
        if response.status == 404:
            return None
        if response.status >= 300:
            raise ProxyError(502, f"the model API answered {response.status} for a listed batch")
        body = await response.read()
    finally:
        response.close()
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProxyError(502, "the model API answered a listed batch with no JSON") from None
    return with_gateway_results_url(parsed) or (parsed if isinstance(parsed, dict) else None)


def _unavailable(exc: StageUnavailable) -> ProxyError:
    return ProxyError(
        503,
        f"the gateway cannot decide or record this request right now ({exc.component} store "
        "unavailable)",
        code=f"{exc.component}_unavailable",
        headers={"retry-after": "1"},
    )
