"""Streams in flight that must end: rules that start refusing them (``in_flight:
cut``), and accounts that change (a customer suspended, a key revoked).

A request is decided once, when it arrives. A stream admitted at 05:59:59
may run for minutes; a deny rule that takes effect at 06:00 (its
``effective.from`` passes, or a reload brings it in) decides nothing for it
unless the rule says ``in_flight: cut``. Then the stream is decided again at
that instant, against the bundle in force, and ended if a cut rule refuses it.

Cost on the relay loop, per chunk: an identity test of the bundle in force
and, only when a cut rule's start (or the customer's KYC lapse) lies ahead,
one monotonic-clock read. The new decision runs only when one of those fires.

An account change (``gateway.proxy.live_streams`` hands the watch the new
principal, or the credential's refusal) raises a flag the same ``due()``
reads first: one more attribute read per chunk. Which refusals then end the
stream (``check``), outcome ``account_cut:<rule id>``:

- the account's own: suspended, a confirmed sanctions match, the key revoked,
  expired or gone. Always: an officer who suspends a customer or revokes a
  key means its traffic to stop now; no rule's ``in_flight`` speaks for
  these, and a stream admitted earlier has no grace to claim.
- any other refusal the change itself causes: the old principal is allowed
  and the new one refused, by the same bundle at the same instant (KYC
  downgraded below the tier, a potential sanctions match holding it at
  ``public``, a key's scope narrowed). The change is a decision about this
  customer, made now, so it takes effect now, as the officer expects.
- the same when the customer's KYC lapses mid-stream by itself: its
  ``kyc_expires_at``, or its tier's re-verification deadline
  (``kyc_verified_at`` + ``kyc_max_age_days``), is one more instant the
  stream is decided again at; it ends if it was allowed an instant before the
  lapse and is refused at it. And when the key's own ``expires_at`` passes
  (``key-expired``, as a new request on it is refused), or the OIDC token's
  ``exp`` plus the verifier's leeway (``token-expired``: the token's, not the
  customer's; a stream keeps the instant of the token it was admitted on
  whatever the account's later reads say). Nothing is written at
  these instants, so no change announces them: the watch's ``deadline`` is the
  soonest, and ``gateway.proxy.live_streams`` wakes it then (one timer for all
  streams). A lapse within the hour is also one more instant ``due()`` reads
  the monotonic clock for, as a cut rule's start.
- a refusal the change does not cause (the old principal is refused too:
  a rule that started after the stream was admitted) keeps its rule's
  ``in_flight``. ``in_flight: finish`` grants work admitted before a rule's
  onset the right to finish (a directive's own transition), and an
  unrelated edit (a rename) must not take that away; a cut rule ends it as
  before (``policy_cut:<rule id>``).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson

from gateway.identity.principal import Principal
from gateway.policy.account_tier import account_refusal
from gateway.policy.compiled import CompiledBundle
from gateway.policy.decision import Decision
from gateway.policy.engine import decide
from gateway.policy.facts import ApiShape, RequestFacts
from gateway.policy.holder import PolicyHolder
from gateway.proxy.errors import error_type, join_reasons

_INSTANT = timedelta(microseconds=1)
LAPSE_HORIZON = timedelta(hours=1)
"""A KYC lapse further ahead than this when a stream is (re)decided costs its
chunks no clock read: ``gateway.proxy.live_streams``'s deadline timer wakes
the stream at it instead (``StreamPolicyWatch.deadline``)."""


@dataclass(frozen=True, slots=True)
class Cut:
    """Why a stream ends early: the outcome record's error is ``<cause>_cut:<rule_id>``."""

    rule_id: str
    message: str
    cause: Literal["policy", "account"] = "policy"
    status: int = 403
    """The status whose error type the event carries (401: the credential)."""

    @property
    def outcome_error(self) -> str:
        return f"{self.cause}_cut:{self.rule_id}"


KEY_EXPIRED = Cut("key-expired", "gateway key expired", "account", 401)
TOKEN_EXPIRED = Cut("token-expired", "OIDC token expired", "account", 401)


class StreamPolicyWatch:
    """Tells the relay loop when (and by which rule) a stream must be cut."""

    __slots__ = (
        "_bundle", "_changed", "_checked_at", "_clock", "_due", "_facts", "_holder", "_news",
        "_principal", "_token_expires", "customer_id", "deadline", "key_id", "on_deadline",
    )  # fmt: skip

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
        self._checked_at = clock()
        """The instant of the last decision (admission, then each check)."""
        self._due = self._next_due(bundle, self._checked_at)
        self._changed = False
        self._news: Principal | Cut | None = None
        """What the account changed to: its new principal, or the credential's refusal."""
        self._token_expires = principal.token_expires_at
        """The admitting token's, kept: a principal read after a change has none."""
        self.customer_id = principal.customer_id
        self.key_id = principal.key_id
        self.deadline = self._account_deadline(self._checked_at)
        """When the account next stops holding by itself, with nothing written
        (wall-clock seconds; ``math.inf``: never): the key's expiry, a KYC lapse."""
        self.on_deadline: Callable[[StreamPolicyWatch], None] | None = None
        """Told when ``deadline`` moves (``LiveStreams``, while it follows the stream)."""

    def wake(self) -> None:
        """``deadline`` passed (``gateway.proxy.live_streams``): decide again at the next chunk."""
        self._changed = True

    def account_changed(self, news: Principal | Cut) -> None:
        """The account changed (``gateway.proxy.live_streams``): decide again at the next chunk."""
        if isinstance(self._news, Cut):
            return  # already refused; a later read does not lift it
        self._news = news
        self._changed = True

    def due(self) -> bool:
        """Cheap: whether the policy or the account may have changed for this stream."""
        if self._changed or self._holder.current is not self._bundle:
            return True
        return self._due != math.inf and time.monotonic() >= self._due

    def check(self) -> Cut | None:
        """Why the stream must end now (module doc), else None."""
        bundle = self._holder.current
        now = self._clock()
        self._bundle = bundle
        news, self._news, self._changed = self._news, None, False
        if isinstance(news, Cut):
            return news
        before = self._principal
        self._principal = after = news or before
        expires = after.key_expires_at
        if expires is not None and now >= expires:
            return KEY_EXPIRED  # as a new request on the key is refused now
        if self._token_expires is not None and now >= self._token_expires:
            return TOKEN_EXPIRED  # likewise for the token
        decision = decide(after, self._facts, bundle, now, with_report=False)
        if not decision.allowed:
            if self._caused(after, before if news is not None else None, bundle, now):
                return Cut(decision.rule_ids[0], _message(decision, with_demotion=True),
                           "account", decision.deny_status)  # fmt: skip
            cut = {r.id for r in bundle.rules if r.cut}
            rule_id = next((r for r in decision.rule_ids if r in cut), None)
            if rule_id is not None:
                return Cut(rule_id, _message(decision))
        self._checked_at = now
        self._due = self._next_due(bundle, now)
        deadline = self._account_deadline(now)
        if deadline != self.deadline:  # a new principal or bundle, or this one passed
            self.deadline = deadline
            if self.on_deadline is not None:
                self.on_deadline(self)
        return None

    def _caused(
        self, after: Principal, before: Principal | None, bundle: CompiledBundle, now: datetime
    ) -> bool:
        """Whether the account (changed from ``before``, or its KYC expired since the
        last check), and not the bundle, refuses the stream."""
        if account_refusal(after) is not None:
            return True
        facts = self._facts
        if before is not None and decide(before, facts, bundle, now, with_report=False).allowed:
            return True
        # Allowed an instant before a lapse since the last check: the lapse refuses it.
        return any(
            decide(after, facts, bundle, lapse - _INSTANT, with_report=False).allowed
            for lapse in kyc_lapses(after, bundle)
            if self._checked_at < lapse <= now
        )

    def _account_deadline(self, now: datetime) -> float:
        """``deadline`` after ``now``; the key's or token's expiry even if past (expired
        on the way from the request's decision to its stream: the stream ends at once)."""
        ahead = [lapse for lapse in kyc_lapses(self._principal, self._bundle) if lapse > now]
        for expires in (self._principal.key_expires_at, self._token_expires):
            if expires is not None:
                ahead.append(expires)
        return min(ahead).timestamp() if ahead else math.inf

    def _next_due(self, bundle: CompiledBundle, now: datetime) -> float:
        starts = bundle.rules_for(self._facts.body.model).cut_starts
        i = bisect_right(starts, now)
        due = starts[i] if i < len(starts) else None
        for lapse in kyc_lapses(self._principal, bundle):
            # Within the horizon only: most customers' KYC lapses months ahead,
            # and their streams should not pay a clock read per chunk for it.
            if now < lapse <= now + LAPSE_HORIZON and (due is None or lapse < due):
                due = lapse  # the tier is demoted then (module doc)
        if due is None:
            return math.inf
        return time.monotonic() + (due - now).total_seconds()


def kyc_lapses(principal: Principal, bundle: CompiledBundle) -> list[datetime]:
    """The instants the customer's KYC stops holding by itself: its expiry, and
    its assigned tier's re-verification deadline (``kyc_max_age_days``)."""
    lapses = []
    if principal.kyc_expires_at is not None:
        lapses.append(_utc(principal.kyc_expires_at))
    tier = bundle.tiers.get(principal.tier)
    verified = principal.kyc_verified_at
    if tier is not None and tier.kyc_max_age is not None and verified is not None:
        lapses.append(_utc(verified) + tier.kyc_max_age)
    return lapses


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _message(decision: Decision, with_demotion: bool = False) -> str:
    message = join_reasons(decision.reasons) or "denied by policy"
    if with_demotion and decision.tier_demotion is not None:
        # An account cut by a demotion (KYC, screening): the client is told why.
        message = f"{message} (tier {decision.effective_tier}: {decision.tier_demotion})"
    return message


def cut_event(api: ApiShape, cut: Cut) -> bytes:
    """The SSE error event that ends a cut stream, in the client's API shape
    (the SDKs raise it as an API error carrying the rule id)."""
    kind = error_type(api, cut.status)
    if api == "anthropic":
        doc = {"type": "error", "error": {"type": kind, "message": cut.message,
                                          "code": cut.rule_id}}  # fmt: skip
        return b"event: error\ndata: " + orjson.dumps(doc) + b"\n\n"
    doc = {"error": {"message": cut.message, "type": kind, "param": None, "code": cut.rule_id}}
    return b"data: " + orjson.dumps(doc) + b"\n\n"
