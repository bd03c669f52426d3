"""The first steps of a stored-response or Message Batches call, before its own decision.

The same steps, in the same order, as ``Pipeline._decide`` takes for a plain
request: where the client is, the body (bounded and timed like any body; a
refusal while reading is attributed to the caller if it can be), the policy
in force once the body has arrived (``Pipeline.fresh_policy``), who the
caller is, and the query string's bounds. ``Pipeline._decide`` keeps its own
inline copy on purpose: calling this would cost every chat request one more
coroutine and await, and it checks the body's encoding between these steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.identity.principal import Principal
from gateway.proxy.asgi_io import Receive, Scope, read_body
from gateway.proxy.body_deadline import Task
from gateway.proxy.errors import ProxyError
from gateway.proxy.exchange import Exchange
from gateway.proxy.request_checks import check_query

if TYPE_CHECKING:
    from gateway.proxy.pipeline import Pipeline


async def read_and_identify(
    pipeline: Pipeline, ex: Exchange, scope: Scope, receive: Receive, task: Task
) -> tuple[bytes, Principal]:
    """The call's body and its caller, once its origin, policy snapshot and
    principal are on ``ex``.

    Raises ProxyError to refuse (a body or query over its bounds, a failed credential)."""
    ex.origin = pipeline._locate(ex, scope)
    try:
        raw = await read_body(
            scope, receive, pipeline.services.settings.max_body_bytes, pipeline.body_deadlines,
            task,
        )
    except ProxyError:
        await pipeline._attribute(ex, scope)
        raise
    pipeline.fresh_policy(ex)
    ex.principal = principal = await pipeline._identify(ex, scope)
    query = scope.get("query_string") or b""
    if query:
        check_query(query)
    return raw, principal
