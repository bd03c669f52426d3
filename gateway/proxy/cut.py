"""Streams in flight and rules that start refusing them: ``in_flight: cut``.

A request is decided once, when it arrives. A stream admitted at 05:59:59
may run for minutes; a deny rule that takes effect at 06:00 (its
``effective.from`` passes, or a reload brings it in) decides nothing for it
unless the rule says ``in_flight: cut``. Then the stream is decided again at
that instant, against the bundle in force, and ended if a cut rule refuses it.

Cost on the relay loop, per chunk: an identity test of the bundle in force
and, only when a cut rule's start lies ahead, one monotonic-clock read. The
new decision runs only when one of those fires.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections.abc import Callable
from datetime import datetime

import orjson

from gateway.identity.principal import Principal
from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide
from gateway.policy.facts import ApiShape, RequestFacts
from gateway.policy.holder import PolicyHolder
from gateway.proxy.errors import error_type, join_reasons


class StreamPolicyWatch:
    """Tells the relay loop when (and by which rule) a stream must be cut."""

    __slots__ = ("_bundle", "_clock", "_due", "_facts", "_holder", "_principal")

    def __init__(
        self,
        holder: PolicyHolder,
        bundle: CompiledBundle,
        principal: Principal,
        facts: RequestFacts,
        clock: Callable[[], datetime],
    ) -> None:
        self._holder = holder
        self._bundle = bundle
        self._principal = principal
        self._facts = facts
        self._clock = clock
        self._due = self._next_due(bundle, clock())

    def due(self) -> bool:
        """Cheap: whether the policy may have changed for this stream."""
        if self._holder.current is not self._bundle:
            return True
        return self._due != math.inf and time.monotonic() >= self._due

    def check(self) -> tuple[str, str] | None:
        """``(rule id, message)`` when a cut rule now refuses the stream, else None."""
        bundle = self._holder.current
        now = self._clock()
        self._bundle = bundle
        decision = decide(self._principal, self._facts, bundle, now, with_report=False)
        if not decision.allowed:
            cut = {r.id for r in bundle.rules if r.cut}
            rule_id = next((r for r in decision.rule_ids if r in cut), None)
            if rule_id is not None:
                return rule_id, join_reasons(decision.reasons) or "denied by policy"
        self._due = self._next_due(bundle, now)
        return None

    def _next_due(self, bundle: CompiledBundle, now: datetime) -> float:
        starts = bundle.rules_for(self._facts.body.model).cut_starts
        i = bisect_right(starts, now)
        if i == len(starts):
            return math.inf
        return time.monotonic() + (starts[i] - now).total_seconds()


def cut_event(api: ApiShape, rule_id: str, message: str) -> bytes:
    """The SSE error event that ends a cut stream, in the client's API shape
    (the SDKs raise it as an API error carrying the rule id)."""
    kind = error_type(api, 403)
    if api == "anthropic":
        doc = {"type": "error", "error": {"type": kind, "message": message, "code": rule_id}}
        return b"event: error\ndata: " + orjson.dumps(doc) + b"\n\n"
    doc = {"error": {"message": message, "type": kind, "param": None, "code": rule_id}}
    return b"data: " + orjson.dumps(doc) + b"\n\n"
