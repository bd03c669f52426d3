"""Compile ``when``/``unless`` conditions into closures, once per bundle load.

A compiled condition is ``Predicate = Callable[[EvalContext], bool]``; body-only
conditions (capability classifiers) are ``BodyPredicate = Callable[[BodyFacts], bool]``.
Sets are frozensets resolved at compile time, regexes are compiled at compile
time, so evaluating a rule does no parsing, lookups by name or allocation
beyond the closure calls.

Semantics of each key (all keys of one mapping must hold):
- ``citizenship_in``: any of the principal's citizenships is in the set.
- ``residence_in`` / ``incorporated_in``: the country (or ISO 3166-2 region) is in the set.
- ``origin_in``: the origin country is in the set's countries, or the origin
  region is in its regions (regions need a city GeoIP database).
- ``controlled_by_in``: the shares of all owners from countries in the set,
  added together, reach the bundle's ``control_threshold_percent`` (OFAC's
  aggregate 50% rule: 30% CN + 25% HK is control by a set holding both).
- ``kyc_at_least``: the principal's KYC level ranks at or above the named one
  (an unknown level ranks below every level).
- ``kyc_expired``: ``kyc_expires_at <= now`` (naive datetimes are read as UTC).
- ``tier_in`` and ``model_allowed_for_tier`` use the *effective* tier.
- ``has_attribute``: every listed attribute is present.
- ``capability_in``: the request carries at least one listed capability.
- ``prompt_matches``: any listed regex finds a match in the prompt text.
- ``max_tokens_over`` / ``messages_over``: strictly greater than the number.
- ``requests_logprobs`` / ``requests_reasoning``: the body asks for token
  log-probabilities / the model's reasoning (``proxy/body.py`` says which fields).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.identity.principal import Principal
from gateway.policy import schema as s
from gateway.policy.facts import BodyFacts, RequestFacts
from gateway.policy.names import resolve_country_set


@dataclass(slots=True)
class EvalContext:
    """Everything a rule may look at for one decision; built once per decision."""

    principal: Principal
    facts: RequestFacts
    tier: str
    now: datetime
    kyc_rank: int
    model_tiers: frozenset[str]
    threshold: float


Predicate = Callable[[EvalContext], bool]
BodyPredicate = Callable[[BodyFacts], bool]


def always(_: object) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class CompileEnv:
    groups: Mapping[str, s.CountryGroup]
    kyc_rank: Mapping[str, int]


def kyc_too_old(principal: Principal, max_age: timedelta, now: datetime) -> bool:
    """Verified ``max_age`` or longer ago, or at an unknown time (a tier that asks
    for re-verification cannot take "never recorded" for "recent")."""
    verified = principal.kyc_verified_at
    if verified is None:
        return True
    if verified.tzinfo is None:
        verified = verified.replace(tzinfo=UTC)
    return now - verified >= max_age


def kyc_expired(principal: Principal, now: datetime) -> bool:
    expires = principal.kyc_expires_at
    if expires is None:
        return False
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires <= now


def _names(value: str | Sequence[str]) -> frozenset[str]:
    return frozenset([value] if isinstance(value, str) else value)


def compile_patterns(value: s.NameSet) -> Callable[[str], bool]:
    """One search over an alternation of all patterns when they combine cleanly."""
    patterns = [value] if isinstance(value, str) else list(value)
    compiled = [re.compile(p) for p in patterns]
    try:
        combined = re.compile("|".join(_scoped(p) for p in patterns))
    except re.error:
        combined = None
    if combined is not None:
        search = combined.search
        return lambda text: search(text) is not None
    return lambda text: any(c.search(text) is not None for c in compiled)


_GLOBAL_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


def _scoped(pattern: str) -> str:
    # `(?i)x|y` applies flags to the whole expression; joined with others it
    # must become the scoped form `(?i:x|y)` or it would leak into them.
    match = _GLOBAL_FLAGS.match(pattern)
    if match:
        return f"(?{match.group(1)}:{pattern[match.end() :]})"
    return f"(?:{pattern})"


def _all(preds: list[Callable[[object], bool]]) -> Callable[[object], bool]:
    if not preds:
        return always
    if len(preds) == 1:
        return preds[0]
    items = tuple(preds)
    return lambda x: all(p(x) for p in items)


def compile_body(cond: s.BodyCondition) -> BodyPredicate:
    preds: list[BodyPredicate] = _body_preds(cond)
    if cond.any_ is not None:
        subs = tuple(compile_body(c) for c in cond.any_)
        preds.append(lambda b: any(p(b) for p in subs))
    if cond.all_ is not None:
        subs_all = tuple(compile_body(c) for c in cond.all_)
        preds.append(lambda b: all(p(b) for p in subs_all))
    if cond.not_ is not None:
        inner = compile_body(cond.not_)
        preds.append(lambda b: not inner(b))
    return _all(preds)  # type: ignore[arg-type]


def _body_preds(cond: s.BodyCondition | s.Condition) -> list[BodyPredicate]:
    preds: list[BodyPredicate] = []
    if cond.has_tools is not None:
        want = cond.has_tools
        preds.append(lambda b: b.has_tools is want)
    if cond.prompt_matches is not None:
        match = compile_patterns(cond.prompt_matches)
        preds.append(lambda b: match(b.prompt_text))
    if cond.max_tokens_over is not None:
        n = cond.max_tokens_over
        preds.append(lambda b: b.max_tokens is not None and b.max_tokens > n)
    if cond.messages_over is not None:
        m = cond.messages_over
        preds.append(lambda b: b.message_count > m)
    if cond.requests_logprobs is not None:
        want_logprobs = cond.requests_logprobs
        preds.append(lambda b: b.logprobs is want_logprobs)
    if cond.requests_reasoning is not None:
        want_reasoning = cond.requests_reasoning
        preds.append(lambda b: b.reasoning is want_reasoning)
    return preds


def compile_condition(cond: s.Condition, env: CompileEnv) -> Predicate:
    preds: list[Predicate] = []
    add = preds.append

    def countries(value: s.NameSet) -> tuple[frozenset[str], frozenset[str]]:
        c, r, problems = resolve_country_set(value, dict(env.groups))
        if problems:  # the loader's checks make this unreachable; fail loudly if not
            raise ValueError("; ".join(problems))
        return c, r

    if cond.citizenship_in is not None:
        cs, _ = countries(cond.citizenship_in)
        add(lambda x: not x.principal.citizenships.isdisjoint(cs))
    if cond.residence_in is not None:
        rc, rr = countries(cond.residence_in)
        add(lambda x: _place_in(x.principal.residence, rc, rr))
    if cond.incorporated_in is not None:
        ic, ir = countries(cond.incorporated_in)
        add(lambda x: _place_in(x.principal.incorporated_in, ic, ir))
    if cond.origin_in is not None:
        oc, orr = countries(cond.origin_in)
        add(lambda x: x.facts.origin.country in oc or x.facts.origin.region in orr)
    if cond.origin_unknown is not None:
        unknown = cond.origin_unknown
        add(lambda x: (x.facts.origin.country is None) is unknown)
    if cond.us_person is not None:
        us = cond.us_person
        add(lambda x: x.principal.is_us_person is us)
    if cond.controlled_by_in is not None:
        cc, _ = countries(cond.controlled_by_in)
        add(lambda x: x.principal.controlled_by(cc, x.threshold))
    if cond.kyc_at_least is not None:
        rank = env.kyc_rank[cond.kyc_at_least]
        add(lambda x: x.kyc_rank >= rank)
    if cond.kyc_expired is not None:
        expired = cond.kyc_expired
        add(lambda x: kyc_expired(x.principal, x.now) is expired)
    if cond.tier_in is not None:
        tiers = _names(cond.tier_in)
        add(lambda x: x.tier in tiers)
    if cond.has_attribute is not None:
        attrs = _names(cond.has_attribute)
        add(lambda x: attrs <= x.principal.attributes)
    if cond.customer_in is not None:
        customers = _names(cond.customer_in)
        add(lambda x: x.principal.customer_id in customers)
    if cond.sanctions_status_in is not None:
        statuses = _names(cond.sanctions_status_in)
        add(lambda x: x.principal.sanctions_status in statuses)
    if cond.model_in is not None:
        models = _names(cond.model_in)
        add(lambda x: x.facts.body.model in models)
    if cond.capability_in is not None:
        caps = _names(cond.capability_in)
        add(lambda x: not x.facts.capabilities.isdisjoint(caps))
    if cond.endpoint_in is not None:
        endpoints = _names(cond.endpoint_in)
        add(lambda x: x.facts.endpoint in endpoints)
    if cond.model_allowed_for_tier is not None:
        allowed = cond.model_allowed_for_tier
        add(lambda x: (x.tier in x.model_tiers) is allowed)
    for body_pred in _body_preds(cond):
        add(lambda x, bp=body_pred: bp(x.facts.body))  # type: ignore[misc]
    if cond.any_ is not None:
        subs = tuple(compile_condition(c, env) for c in cond.any_)
        add(lambda x: any(p(x) for p in subs))
    if cond.all_ is not None:
        subs_all = tuple(compile_condition(c, env) for c in cond.all_)
        add(lambda x: all(p(x) for p in subs_all))
    if cond.not_ is not None:
        inner = compile_condition(cond.not_, env)
        add(lambda x: not inner(x))
    return _all(preds)  # type: ignore[arg-type]


def _place_in(code: str | None, countries: frozenset[str], regions: frozenset[str]) -> bool:
    if code is None:
        return False
    if "-" in code:  # an ISO 3166-2 region: its country counts too
        return code in regions or code.split("-", 1)[0] in countries
    return code in countries
