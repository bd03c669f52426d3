"""``GET /v1/messages/batches``: the caller's own batches, never the account's.

The upstream lists every batch of its one account, which holds every
customer's: relaying its list would show each customer the others' batch
ids and request counts. So the list is paged from the gateway's bindings
(``BatchOwners.page``: ``after_id``, ``before_id``, ``limit`` as Anthropic
pages), and the listed batches' current state is read from the upstream:
with one list call per upstream, the page of its list immediately before
(newer than) the page's oldest batch, and one retrieve of that oldest one
(``_fetch_page``), rather than a retrieve per batch. The upstream's page
also holds other customers' batches: only the ids of the caller's page are
taken from it. A batch it does not hold (more than ``UPSTREAM_PAGE`` others
created in between, an upstream that does not page) is retrieved by id; one
the upstream no longer knows (expired, deleted) is left out.

Listing reveals no model output, so it is decided as ``/v1/models`` is: the
account itself must be servable (not suspended, not a confirmed sanctions
match), the key from this origin must be able to use some model now (else
the refusal a request would get: ``gateway.proxy.batch_visible``), and only
batches whose models it may use are listed. The list is recorded before
anything goes upstream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

import orjson

from gateway.ops import hooks  # ops: metrics + access log
from gateway.policy.account_tier import account_refusal
from gateway.proxy.asgi_io import JSON_CONTENT_TYPE, Scope, Send
from gateway.proxy.asgi_io import send_response as send_raw
from gateway.proxy.batch_answer import with_gateway_results_url
from gateway.proxy.batch_routes import BATCHES_ROUTE
from gateway.proxy.batch_state import BatchPage, Listed
from gateway.proxy.batch_visible import ListPolicy, visible_page
from gateway.proxy.errors import ProxyError, join_reasons, request_id_header, unavailable
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import upstream_request_headers
from gateway.stages import AuditUnavailable, StageUnavailable

if TYPE_CHECKING:
    from gateway.proxy.pipeline import Pipeline

LIST_RULE = "message-batches-list"
UPSTREAM_PAGE = 1000
"""The upstream list's largest page (Anthropic's ``limit`` bound)."""
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
        data = await _fetch_page(pipeline, ex, scope, page.batches)
    except ProxyError as refusal:
        if ex.recorded:
            await pipeline._send_error(ex, send, refusal)
            hooks.refused(ex, refusal.status)  # ops hook
        else:
            await pipeline._refuse(ex, send, refusal)
        return
    except AuditUnavailable as exc:
        await pipeline._send_error(ex, send, unavailable(exc, ""))
        return
    except StageUnavailable as exc:
        await pipeline._refuse(ex, send, unavailable(exc, ""))
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


async def _fetch_page(
    pipeline: Pipeline, ex: Exchange, scope: Scope, batches: list[Listed]
) -> list[dict[str, object]]:
    """The page's batches as the upstream has them now, in the page's order."""
    upstream = pipeline.services.upstream
    by_base: dict[str | None, list[Listed]] = {}
    for batch in batches:
        base = upstream.base_for(ex.bundle, batch.models[0]) if batch.models else None
        by_base.setdefault(base, []).append(batch)
    found: dict[str, dict[str, object]] = {}
    for base, mine in by_base.items():
        if len(mine) > 2:  # else a retrieve each is no more calls
            wanted = {batch.batch_id for batch in mine}
            oldest = mine[-1].batch_id
            query = urlencode({"before_id": oldest, "limit": UPSTREAM_PAGE})
            try:
                listed = await _get(pipeline, ex, scope, f"{BATCHES_ROUTE}?{query}", base)
            except ProxyError:
                listed = None  # each is retrieved by id below, as before
            items = listed.get("data") if isinstance(listed, dict) else None
            for doc in items if isinstance(items, list) else ():
                if isinstance(doc, dict) and doc.get("id") in wanted:  # never another's
                    found[str(doc["id"])] = with_gateway_results_url(doc) or doc
    data: list[dict[str, object]] = []
    for batch in batches:
        doc = found.get(batch.batch_id)
        if doc is None:
            base = upstream.base_for(ex.bundle, batch.models[0]) if batch.models else None
            got = await _get(pipeline, ex, scope, f"{BATCHES_ROUTE}/{batch.batch_id}", base)
            doc = (with_gateway_results_url(got) or got) if isinstance(got, dict) else None
        if doc is not None:
            data.append(doc)
    return data


async def _get(
    pipeline: Pipeline, ex: Exchange, scope: Scope, path: str, base: str | None
) -> object:
    """A batch or a list page as the upstream has it now (None: it does not know it)."""
    services = pipeline.services
    assert ex.principal is not None
    identity = {"x-gateway-customer": ex.principal.customer_id, "x-gateway-decision-id": ex.id}
    if services.settings.upstream_forwarded_for and ex.origin and ex.origin.client_ip:
        identity["x-forwarded-for"] = ex.origin.client_ip  # as forward.py
    headers = upstream_request_headers(
        scope["headers"], "anthropic", services.settings.upstream_api_key, identity
    )
    response = await services.upstream.send("GET", services.upstream.url_for(path, base),
                                            headers, None)  # fmt: skip
    try:
        if response.status == 404:
            return None
        if response.status >= 300:
            raise ProxyError(502, f"the model API answered {response.status} for a listed batch")
        body = await response.read()
    finally:
        response.close()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProxyError(502, "the model API answered a listed batch with no JSON") from None
