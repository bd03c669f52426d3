"""What a Message Batches answer needs before its client sees it.

A new batch is bound to its caller (``BatchBinding.answer``, with the
``batch_bound`` audit event) before the create's answer goes out, so a batch
id is never in a client's hands unbound. The upstream's ``results_url`` is
absolute and names the upstream's host: a client that followed it would go
around the gateway (and without a credential the upstream takes). Every
batch object relayed has it rewritten to the gateway's own results route,
relative, so the SDK resolves it against the address it reached the gateway
at. A deleted batch's binding is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson

from gateway.proxy.batch_charge import ReservedGroup
from gateway.proxy.batch_routes import BATCHES_ROUTE, MAX_BATCH_ID_CHARS
from gateway.proxy.batch_state import BatchOwners
from gateway.proxy.errors import ProxyError
from gateway.stages import AuditSink, StageUnavailable

if TYPE_CHECKING:
    from gateway.proxy.exchange import Exchange
    from gateway.services import Services

log = logging.getLogger(__name__)


def results_path(batch_id: str) -> str:
    return f"{BATCHES_ROUTE}/{batch_id}/results"


def with_gateway_results_url(doc: object) -> dict[str, object] | None:
    """A batch object with its ``results_url`` pointing at the gateway; None
    when ``doc`` is no batch object with one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results_url"), str):
        return None
    batch_id = doc.get("id")
    if not isinstance(batch_id, str):
        return None
    return {**doc, "results_url": results_path(batch_id)}


def rewritten_batch(doc: object) -> bytes | None:
    """``with_gateway_results_url``, serialised; None: the upstream's bytes go
    out as they came."""
    rewritten = with_gateway_results_url(doc)
    return orjson.dumps(rewritten) if rewritten is not None else None


class BatchBinding:
    """Binds a created batch's id to its caller before the client sees it,
    and writes the binding into the audit log (batch id -> create decision):
    the create's inner records were committed before the id existed."""

    def __init__(
        self,
        owners: BatchOwners,
        audit: AuditSink,
        customer_id: str,
        models: tuple[str, ...],
        decision_id: str,
        capabilities: frozenset[str] = frozenset(),
        unsettled: list[ReservedGroup] | None = None,
    ) -> None:
        self._owners = owners
        self._capabilities = capabilities
        self._unsettled = unsettled
        self._audit = audit
        self._customer_id = customer_id
        self._models = models
        self._decision_id = decision_id

    async def answer(self, parsed: object) -> bytes | None:
        """The create's answer (parsed): bound, or a 503 and the answer withheld."""
        batch_id = parsed.get("id") if isinstance(parsed, dict) else None
        if not isinstance(batch_id, str) or not 0 < len(batch_id) <= MAX_BATCH_ID_CHARS:
            return None
        try:
            # The audit log first: a binding whose record could not be
            # committed would still list the batch to its creator and serve
            # its results, with nothing in the log linking it to the decisions
            # that made it. A record whose binding then fails binds nothing.
            await self._audit.record_event("batch_bound", {
                "batch_id": batch_id, "customer_id": self._customer_id,
                "decision_id": self._decision_id, "models": list(self._models),
            })  # fmt: skip
            await self._owners.bind(
                batch_id,
                self._customer_id,
                self._models,
                self._decision_id,
                self._capabilities,
                self._unsettled,
            )
        except StageUnavailable as exc:
            log.error("%s; batch %s created for %s withheld", exc, batch_id, self._decision_id)
            raise ProxyError(
                503,
                "the gateway could not record who owns this batch; it was not delivered",
                code="database_unavailable",
                headers={"retry-after": "1"},
            ) from None
        return rewritten_batch(parsed)


def before_batch_answer(
    services: Services, ex: Exchange, status: int
) -> Callable[[object], Awaitable[bytes | None]] | None:
    """What a Message Batches answer needs before the client sees it: a new
    batch bound to its caller; a batch object's ``results_url`` pointed at
    the gateway; a deleted batch's binding dropped. Results pass as they came."""
    call = ex.batch
    owners = services.batch_owners
    if call is None or status >= 300 or owners is None:
        return None
    if call.operation == "create":
        assert ex.principal is not None and ex.batch_facts is not None
        models = tuple(ex.batch_facts.get("models") or ())
        # The union of its requests' capabilities (``_decide_create``).
        caps = ex.decision.capabilities if ex.decision is not None else frozenset()
        return BatchBinding(
            owners,
            services.audit,
            ex.principal.customer_id,
            models,
            ex.id,
            caps,
            ex.batch_reserved,
        ).answer
    if call.operation in ("retrieve", "cancel"):
        return _rewrite
    if call.operation == "delete" and call.batch_id is not None:
        batch_id = call.batch_id

        async def forget(_: object) -> None:
            # The upstream confirmed the delete: from here the id is not found
            # at the gateway. If the binding cannot be dropped the client is
            # still told of the delete, which happened; a later call by its
            # owner is forwarded and the upstream answers 404.
            try:
                await owners.unbind(batch_id)
            except StageUnavailable as exc:
                log.error("%s after %s", exc, ex.id)
            return None

        return forget
    return None


async def _rewrite(doc: object) -> bytes | None:
    return rewritten_batch(doc)
