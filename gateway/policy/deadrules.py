"""Warnings about rules that match every request or can never decide anything.

Each of these loads as a valid bundle, and each misleads whoever signs it off:

- a ``when: {}`` (conditions deleted by an edit) matches every request: a
  deny refuses every customer at its start instant, an allow serves every
  model to every tier, entitlements notwithstanding;
- an ``unless`` that holds whenever the ``when`` does (``when: {model_in:
  [m]}``, ``unless: {model_in: [m, n]}``) makes a rule that never matches;
- an exemption whose ``effective`` window does not overlap the window of a
  deny rule it names lifts nothing: the licensed customer is refused when the
  directive starts, while the bundle reads as if the licence were honoured;
- an allow naming customers beside deny rules reads as their exception, and
  lifts nothing (``ALLOW_IS_NO_EXCEPTION``).

Cedar's ``analyze`` reports the same classes (policies that match everything
or nothing, policies shadowed by others) with a solver; these are the
syntactic cases an officer's edit produces, checked without one, so a warning
here is always real and a rule not warned about may still be dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.policy import schema as s
from gateway.policy.yamlsrc import DataPath, PolicyError, SourceMap

ANY_OF_KEYS = (
    "citizenship_in",
    "residence_in",
    "origin_in",
    "incorporated_in",
    "tier_in",
    "customer_in",
    "sanctions_status_in",
    "model_in",
    "capability_in",
    "endpoint_in",
)
"""Conditions that hold when a value of the request is in the set (or one of
its values is): a ``when`` set within the ``unless`` set implies the ``unless``."""

CATCH_ALL = {
    "deny": "this deny rule refuses every customer, model and capability while it is in force",
    "allow": (
        "this allow rule serves every model to every tier that no deny rule refuses, "
        "whatever the tiers' entitlements"
    ),
    "exempt": "this rule lifts the deny rules it names for every request",
}


ALLOW_IS_NO_EXCEPTION = (
    "an allow lifts no deny rule (any matching deny wins, whatever the order): to except "
    "these customers from a deny rule, write effect: exempt with exempts: [<its id>]"
)
"""An allow naming customers is usually meant as an exception to a directive,
written by someone used to first-match lists (firewalls, LiteLLM's per-key
allow-lists): it does nothing of the kind."""


def dead_rule_warnings(
    rules: Sequence[s.Rule], rule_index: Sequence[int], source: SourceMap
) -> list[PolicyError]:
    """Warnings for ``rules`` (``rule_index[i]``: where ``rules[i]`` stood in the files)."""
    out: list[PolicyError] = []

    def warn(path: DataPath, message: str) -> None:
        file, line = source.locate(path)
        out.append(PolicyError(file, line, source.format(path), message))

    by_id = {rule.id: rule for rule in rules}
    any_deny = any(rule.effect == "deny" and rule.mode == "enforce" for rule in rules)
    for position, rule in enumerate(rules):
        path: DataPath = ("rules", rule_index[position])
        if _is_empty(rule.when) and rule.unless is None:
            warn((*path, "when"), f"matches every request: {CATCH_ALL[rule.effect]}")
        if rule.unless is not None:
            implied = _implied_keys(rule.when, rule.unless)
            if implied is not None:
                keys = ", ".join(implied) if implied else "it has no condition"
                warn(
                    (*path, "unless"),
                    f"holds whenever 'when' does ({keys}): the rule can never match",
                )
        if rule.effect == "allow" and rule.when.customer_in is not None and any_deny:
            warn((*path, "when", "customer_in"), ALLOW_IS_NO_EXCEPTION)
        for i, target_id in enumerate(rule.exempts or ()):
            target = by_id.get(target_id)
            if target is None:
                continue  # the cross-reference checks report it
            gap = _disjoint(rule, target)
            if gap is not None:
                warn((*path, "exempts", i), f"can never lift '{target_id}': {gap}")
    return out


def _is_empty(c: s.Condition) -> bool:
    return not c.model_dump(exclude_none=True)


def _implied_keys(when: s.Condition, unless: s.Condition) -> list[str] | None:
    """The ``unless`` keys when it provably holds whenever ``when`` does, else None.

    Only leaf conditions are compared: an ``unless`` with ``any``, ``all`` or
    ``not`` is never claimed to be implied (unless it equals the ``when``'s).
    """
    given = when.model_dump(exclude_none=True, by_alias=True)
    needed = unless.model_dump(exclude_none=True, by_alias=True)
    implied: list[str] = []
    for key, value in needed.items():
        have = given.get(key)
        if have is None:
            return None
        if have == value or (key in ANY_OF_KEYS and _as_set(have) <= _as_set(value)):
            implied.append(key)
        else:
            return None
    return implied


def _as_set(value: object) -> frozenset[str]:
    if isinstance(value, list):
        return frozenset(str(item) for item in value)
    return frozenset((str(value),))


def _disjoint(exempt: s.Rule, deny: s.Rule) -> str | None:
    """Why the two rules' ``effective`` windows never overlap, or None if they may."""
    e_from, e_until = _window(exempt)
    d_from, d_until = _window(deny)
    if e_until is not None and d_from is not None and e_until <= d_from:
        return (
            f"this rule is in force until {_t(e_until)} and '{deny.id}' from {_t(d_from)}, "
            "so their windows do not overlap"
        )
    if d_until is not None and e_from is not None and d_until <= e_from:
        return (
            f"this rule is in force from {_t(e_from)} and '{deny.id}' until {_t(d_until)}, "
            "so their windows do not overlap"
        )
    return None


def _window(rule: s.Rule) -> tuple[datetime | None, datetime | None]:
    if rule.effective is None:
        return None, None
    return rule.effective.from_, rule.effective.until


def _t(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
