"""What ``GET /v1/messages/batches`` may show this caller, decided by the policy.

Listing reveals batch metadata (ids, request counts, status), not output,
but it must not be looser than ``/v1/models``: a caller from a sanctioned
origin, or with a key scoped away from a batch's models, sees nothing a
request of its own could not reach.

- The list itself: refused, with the refusal a ``/v1/messages`` request
  would get, when no model of the bundle may be used by this key from this
  origin now (``visible_models``: key scope, origin, directives included).
- Each batch: listed only when a call on it by id would be allowed (its
  models, decided with the capabilities its requests carried,
  ``gateway.proxy.batch_decide``).
"""

from __future__ import annotations

from datetime import datetime

from gateway.geo.origin import Origin
from gateway.identity.principal import Principal
from gateway.policy.capabilities import classify
from gateway.policy.compiled import CompiledBundle
from gateway.policy.decision import Decision
from gateway.policy.engine import decide
from gateway.policy.facts import BodyFacts, RequestFacts
from gateway.proxy.batch_state import BatchOwners, BatchPage, Listed

MESSAGES_ENDPOINT = "/v1/messages"
"""What batch calls are decided as (``endpoint_in: [/v1/messages]`` holds)."""


class ListPolicy:
    """The policy's answers for one list call (memoised: a page repeats models)."""

    def __init__(
        self, principal: Principal, bundle: CompiledBundle, now: datetime, origin: Origin
    ) -> None:
        self._principal = principal
        self._bundle = bundle
        self._now = now
        self._origin = origin
        self._memo: dict[tuple[str, frozenset[str]], tuple[RequestFacts, Decision]] = {}

    def decision(self, model: str, carried: frozenset[str] = frozenset()) -> Decision:
        return self._decided(model, carried)[1]

    def _decided(self, model: str, carried: frozenset[str]) -> tuple[RequestFacts, Decision]:
        key = (model, carried)
        known = self._memo.get(key)
        if known is None:
            body = BodyFacts(model=model)
            facts = RequestFacts(
                endpoint=MESSAGES_ENDPOINT,
                api="anthropic",
                body=body,
                origin=self._origin,
                capabilities=classify(body, self._bundle) | carried,
            )
            found = decide(self._principal, facts, self._bundle, self._now, with_report=False)
            known = self._memo[key] = (facts, found)
        return known

    def refusal(self) -> tuple[RequestFacts, Decision] | None:
        """The refusal of the list (with the facts it was decided on), when no
        model may be used at all; None when some may."""
        first: tuple[RequestFacts, Decision] | None = None
        for model in self._bundle.models:
            facts, found = self._decided(model, frozenset())
            if found.allowed:
                return None
            first = first or (facts, found)
        return first

    def shows(self, batch: Listed) -> bool:
        carried = batch.capabilities or frozenset()
        return all(self.decision(model, carried).allowed for model in batch.models)


async def visible_page(
    owners: BatchOwners,
    customer_id: str,
    after_id: str | None,
    before_id: str | None,
    limit: int,
    policy: ListPolicy,
) -> BatchPage:
    """Up to ``limit`` batches the caller may see, paging on past hidden ones
    so a page of hidden batches does not end the list early."""
    kept: list[Listed] = []
    while True:
        page = await owners.page(customer_id, after_id, before_id, limit)
        shown = [batch for batch in page.batches if policy.shows(batch)]
        kept = kept + shown if before_id is None else shown + kept
        if len(kept) >= limit or not page.has_more or not page.batches:
            break
        if before_id is None:
            after_id = page.batches[-1].batch_id  # on towards older ones
        else:
            before_id = page.batches[0].batch_id  # on towards newer ones
    more = page.has_more or len(kept) > limit
    return BatchPage(kept[:limit] if before_id is None else kept[-limit:], more)
