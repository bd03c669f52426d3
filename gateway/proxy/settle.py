"""Settle a forwarded request: charge what it used, record its outcome.

Quota for tokens is reserved before forwarding and settled here to the usage
the answer showed (DESIGN.md: reserve, then settle); a Responses retrieval,
a background response cut short and a Message Batch's results each have a
rule of their own (docs/quotas.md). The outcome record, linked to its
decision, is written last.
"""

from __future__ import annotations

import logging
import time

from gateway.audit.ids import new_id
from gateway.audit.record import OutcomeRecord
from gateway.ops import hooks  # ops: metrics + access log
from gateway.proxy.answer import Outcome
from gateway.proxy.batch_charge import ResultsUsage, charge_results
from gateway.proxy.exchange import Exchange
from gateway.proxy.reference_owners import ReferenceBinding
from gateway.services import Services
from gateway.stages import Admission, StageUnavailable, Usage

log = logging.getLogger("gateway.proxy")

WITHHELD = "response_owner_unrecorded"
"""The upstream answered 2xx (it did the work, and bills it) but the gateway
withheld the answer: its id could not be bound to its caller."""


def _at_least(usage: Usage | None, tokens: int) -> Usage:
    """``usage``, raised to ``tokens`` in total (the rest counted as output)."""
    tokens_in = (usage.tokens_in or 0) if usage is not None else 0
    tokens_out = (usage.tokens_out or 0) if usage is not None else 0
    return Usage(tokens_in, max(tokens_out, tokens - tokens_in))


class Settlement:
    """What happens after the relay, for every forwarded request."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def _late_charge(self, ex: Exchange, shown: Usage | None) -> Usage | None:
        """What a retrieval charges: the tokens a background response used
        beyond what its create was charged (its reservation: it answered
        ``queued``, without usage), by the first retrieval that shows its
        usage, in whichever process. Never a refund: the reservation stands."""
        owners = self.services.response_owners
        stored = ex.stored
        if shown is None or shown.total is None or owners is None or ex.admission is None:
            return None
        assert stored is not None
        try:
            charged = await owners.claim_unsettled(stored.response_id)
        except StageUnavailable as exc:
            log.error("%s; %s keeps its create's charge", exc, ex.id)
            return None
        if charged is None or shown.total <= charged:
            return None
        return Usage(0, shown.total - charged)

    async def _leave_unsettled(self, ex: Exchange, response_id: str, charged: Usage) -> None:
        """A Responses stream cut short (client gone, upstream broke) is charged
        ``charged``, at least its reservation, not the usage its last event
        would have shown. In background mode the upstream goes on without the
        client, who retrieves the whole response later: that retrieval settles
        the rest (``_late_charge``), or hanging up after the first event would
        make the context a ``previous_response_id`` pulls in free."""
        owners = self.services.response_owners
        if owners is None or charged.total is None:
            return
        try:
            await owners.leave_unsettled(response_id, charged.total)
        except StageUnavailable as exc:
            log.error("%s; %s keeps its stream's charge", exc, ex.id)

    async def _settle_admission(
        self, ex: Exchange, admission: Admission, outcome: Outcome, first: bool = False
    ) -> None:
        usage = outcome.usage
        reserved = admission.reserved_tokens
        relayed = outcome.status is not None and outcome.status < 300
        # Withheld whole (its id could not be bound): the client got a 503,
        # but the upstream created it (a batch runs every request) and bills
        # it; the usage it showed, if any, is complete.
        withheld = not relayed and outcome.error == WITHHELD
        # A failed call (no answer, or an error status) passes its usage,
        # if any, else None: the reservation is released.
        if (relayed or withheld) and (usage is None or (relayed and outcome.error is not None)):
            # Answered without usage: keep the reservation as charged.
            # Cut after it started (client gone, upstream broke): the
            # upstream generated, and bills, tokens its final usage would
            # have reported; charge at least the reservation, or dropping
            # the connection before the last chunk would make streams free.
            usage = _at_least(usage, reserved)
            if first and outcome.streamed_response_id is not None:
                await self._leave_unsettled(ex, outcome.streamed_response_id, usage)
        try:
            await self.services.meter.settle(admission, usage)
        except StageUnavailable as exc:
            # The reservation and lease expire on their own; say so loudly.
            log.error("could not settle quota for %s: %s", ex.id, exc)

    async def _record_context(self, response_id: str, tokens: int | None) -> None:
        """A streamed Responses answer's usage, for the requests continuing it
        (``response_owners.Bound.context_tokens``); a complete one is bound with it."""
        owners = self.services.response_owners
        if owners is None or tokens is None:
            return
        try:
            await owners.record_context(response_id, tokens)
        except StageUnavailable as exc:
            log.error("%s; its continuations reserve their own bodies only", exc)

    async def settle(
        self, ex: Exchange, outcome: Outcome, results: ResultsUsage | None = None
    ) -> None:
        """Charge what the answer used, record its outcome (after the answer
        went out, or the request failed)."""
        services = self.services
        if ex.stored is not None:
            # A retrieval shows the usage of a response charged when it was
            # created (docs/quotas.md): charging it again per poll would bill
            # a background response once per retrieval, and the outcome
            # record would count its tokens twice. Only what a background
            # response used beyond its create's charge is charged, once.
            outcome.usage = await self._late_charge(ex, outcome.usage)
        elif ex.batch is not None:
            # A batch object has no usage, and results show usage the create
            # was charged for (its reservation stands: docs/quotas.md).
            outcome.usage = None
        if ex.admission is not None:
            await self._settle_admission(ex, ex.admission, outcome, first=True)
            for extra in ex.extra_admissions or ():
                await self._settle_admission(ex, extra, outcome)
        if outcome.streamed_response_id is not None and outcome.usage is not None:
            await self._record_context(outcome.streamed_response_id, outcome.usage.total)
        if results is not None and outcome.status == 200:
            # What the results that went out (all, or up to a cut) used beyond
            # what the batch was charged so far is charged, once; the record
            # shows what this download charged.
            if outcome.error is None:
                results.finish()
            outcome.usage = await charge_results(services, ex, results)
            owners = services.reference_owners
            if results.references and owners is not None and ex.principal is not None:
                # After the lines went out, as a stream's: until then they are refused.
                binding = ReferenceBinding(owners, ex.principal.customer_id, ex.id)
                await binding.bind_all(results.references)
        record = OutcomeRecord(
            id=new_id(),
            ts=services.clock(),
            decision_id=ex.id,
            upstream_status=outcome.status,
            tokens_in=outcome.usage.tokens_in if outcome.usage else None,
            tokens_out=outcome.usage.tokens_out if outcome.usage else None,
            latency_ms=round((time.perf_counter() - ex.started) * 1000, 3),
            bytes_out=outcome.bytes_out,
            error=outcome.error,
        )
        hooks.finished(ex, outcome.status, outcome.error, (record.tokens_in, record.tokens_out))
        await services.audit.record_outcome(record)
