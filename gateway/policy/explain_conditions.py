"""Each condition of a rule, evaluated on its own, with the values it compared.

For ``policy explain`` only (never on the request path). Whether a condition
holds is not re-implemented here: each key is compiled on its own by the
engine's compiler (``conditions.compile_condition``) and run on the same
``EvalContext`` the engine builds. What this module adds is the description of
the value each key looked at (``citizenships {CN} ∩ countries_of_concern``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.identity.ownership import controlled_share
from gateway.policy import schema as s
from gateway.policy.conditions import CompileEnv, EvalContext, compile_condition
from gateway.policy.names import resolve_country_set


@dataclass(frozen=True, slots=True)
class ConditionTrace:
    key: str
    """A condition key (``citizenship_in``), or ``any``/``all``/``not``/``match``."""
    expected: str
    """The condition as written: ``countries_of_concern``, ``[fable-5, mythos-5]``, ``true``."""
    actual: str
    """The request's or customer's value it was compared with."""
    holds: bool
    parts: tuple[ConditionTrace, ...] = ()
    """For ``any``/``all``/``not``: each alternative (a ``match`` of ANDed keys)."""

    def text(self) -> str:
        verdict = "true" if self.holds else "false"
        if self.key == "match":
            return f"({self.expected}) → {verdict}"
        return f"{self.key} {self.expected}: {self.actual} → {verdict}"

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "key": self.key, "expected": self.expected, "actual": self.actual,
            "holds": self.holds, "text": self.text(),
        }  # fmt: skip
        if self.parts:
            doc["parts"] = [p.document() for p in self.parts]
        return doc


def written(value: object) -> str:
    """A condition value as a reader of the YAML would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, list | tuple | frozenset | set):
        items = sorted(map(str, value)) if isinstance(value, frozenset | set) else map(str, value)
        return f"[{', '.join(items)}]"
    return str(value)


def _set(values: Sequence[str] | frozenset[str]) -> str:
    return "{" + ", ".join(sorted(values)) + "}"


Describe = Callable[[EvalContext, CompileEnv, Any], str]


def _countries(env: CompileEnv, value: s.NameSet) -> tuple[frozenset[str], frozenset[str]]:
    countries, regions, _ = resolve_country_set(value, dict(env.groups))
    return countries, regions


def _citizenship(x: EvalContext, env: CompileEnv, value: s.NameSet) -> str:
    countries, _ = _countries(env, value)
    held = x.principal.citizenships
    return f"citizenships {_set(held)} ∩ {written(value)} = {_set(held & countries)}"


def _place(attribute: str) -> Describe:
    def describe(x: EvalContext, env: CompileEnv, value: s.NameSet) -> str:
        return f"{attribute.replace('_', ' ')} {getattr(x.principal, attribute) or 'unknown'}"

    return describe


def _origin(x: EvalContext, env: CompileEnv, value: object) -> str:
    origin = x.facts.origin
    if origin.country is None:
        return "origin unknown"
    return f"origin {origin.region or origin.country}"


def _control(x: EvalContext, env: CompileEnv, value: s.NameSet) -> str:
    countries, _ = _countries(env, value)
    owners = ", ".join(f"{o.country} {o.percent:g}%" for o in x.principal.ownership) or "none"
    share = controlled_share(x.principal.ownership, countries, x.threshold)
    return f"owners {owners}: {share:g}% from the set (threshold {x.threshold:g}%)"


def _kyc_expired(x: EvalContext, env: CompileEnv, value: object) -> str:
    expires = x.principal.kyc_expires_at
    return "kyc never expires" if expires is None else f"kyc expires {expires.isoformat()}"


def _model_allowed(x: EvalContext, env: CompileEnv, value: object) -> str:
    return f"tier {x.tier} in model tiers {written(x.model_tiers)}"


def _prompt(x: EvalContext, env: CompileEnv, value: object) -> str:
    return f"prompt of {len(x.facts.body.prompt_text)} characters"


DESCRIBERS: dict[str, Describe] = {
    "citizenship_in": _citizenship,
    "residence_in": _place("residence"),
    "incorporated_in": _place("incorporated_in"),
    "origin_in": _origin,
    "origin_unknown": _origin,
    "us_person": lambda x, env, v: written(x.principal.is_us_person),
    "controlled_by_in": _control,
    "kyc_at_least": lambda x, env, v: f"kyc_level {x.principal.kyc_level}",
    "kyc_expired": _kyc_expired,
    "tier_in": lambda x, env, v: f"effective tier {x.tier}",
    "has_attribute": lambda x, env, v: f"attributes {_set(x.principal.attributes)}",
    "customer_in": lambda x, env, v: x.principal.customer_id,
    "sanctions_status_in": lambda x, env, v: x.principal.sanctions_status,
    "model_in": lambda x, env, v: x.facts.body.model,
    "capability_in": lambda x, env, v: f"capabilities {_set(x.facts.capabilities)}",
    "endpoint_in": lambda x, env, v: x.facts.endpoint,
    "model_allowed_for_tier": _model_allowed,
    "has_tools": lambda x, env, v: written(x.facts.body.has_tools),
    "prompt_matches": _prompt,
    "max_tokens_over": lambda x, env, v: f"max_tokens {written(x.facts.body.max_tokens)}",
    "messages_over": lambda x, env, v: f"{x.facts.body.message_count} messages",
    "requests_logprobs": lambda x, env, v: written(x.facts.body.logprobs),
    "requests_reasoning": lambda x, env, v: written(x.facts.body.reasoning),
}
DESCRIBED_KEYS: tuple[str, ...] = tuple(DESCRIBERS)


def _holds(cond: s.Condition, x: EvalContext, env: CompileEnv) -> bool:
    # The engine's own compiler, so "holds" here is what the rule's predicate saw.
    return compile_condition(cond, env)(x)


def trace_condition(
    cond: s.Condition, x: EvalContext, env: CompileEnv
) -> tuple[ConditionTrace, ...]:
    """One trace per key of ``cond`` (keys of one mapping are ANDed), in schema order."""
    out: list[ConditionTrace] = []
    for key, describe in DESCRIBERS.items():
        value = getattr(cond, key)
        if value is None:
            continue
        alone = s.Condition.model_construct(**{key: value})
        actual = describe(x, env, value)
        out.append(ConditionTrace(key, written(value), actual, _holds(alone, x, env)))
    for key, subs in (("any", cond.any_), ("all", cond.all_)):
        if subs is None:
            continue
        parts = tuple(_match(sub, x, env) for sub in subs)
        holds = any(p.holds for p in parts) if key == "any" else all(p.holds for p in parts)
        out.append(ConditionTrace(key, f"{len(parts)} alternatives", "", holds, parts))
    if cond.not_ is not None:
        inner = _match(cond.not_, x, env)
        out.append(ConditionTrace("not", "", "", not inner.holds, (inner,)))
    return tuple(out)


def _match(cond: s.Condition, x: EvalContext, env: CompileEnv) -> ConditionTrace:
    """A nested mapping: holds when all its keys do (compiled as a whole)."""
    parts = trace_condition(cond, x, env)
    label = ", ".join(p.key for p in parts)
    return ConditionTrace("match", label, "", _holds(cond, x, env), parts)
