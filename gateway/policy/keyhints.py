"""What an "unknown key" error adds: the key meant, or where the key belongs.

The schema forbids unknown keys (a typo must never load as a rule that
silently does less), but "unknown key" alone leaves the officer to find the
spelling in the docs, and a condition dedented out of its ``when`` (valid
YAML) reads as an unknown key of the rule.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence

from pydantic import BaseModel

from gateway.policy import schema as s

CONDITION_PARENTS = frozenset({"when", "unless", "any", "all", "not"})
SYNONYMS = {
    "start": "from", "begin": "from", "since": "from", "starts": "from",
    "end": "until", "to": "until", "expires": "until", "ends": "until",
    "condition": "when", "conditions": "when", "except": "unless", "action": "effect",
    "customer_id": "id", "customer": "id",
}  # fmt: skip
"""Words officers write for a key the schema spells otherwise (other policy
languages' words: Cedar's ``when``/``unless`` match, OPA has none)."""


def _keys(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(field.alias or name for name, field in model.model_fields.items())


@functools.cache
def _condition_keys() -> frozenset[str]:
    return _keys(s.Condition)


@functools.cache
def _rule_keys() -> frozenset[str]:
    return _keys(s.Rule)


@functools.cache
def _every_key() -> tuple[str, ...]:
    models = [v for v in vars(s).values() if isinstance(v, type) and issubclass(v, BaseModel)]
    return tuple(sorted(set().union(*(_keys(m) for m in models))))


def keys_at(root: type[BaseModel], loc: Sequence[int | str]) -> frozenset[str] | None:
    """The keys the mapping at ``loc`` (under a ``root`` document) may hold, if known."""
    model: type[BaseModel] = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return None
        model = inner
    return _keys(model)


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The model an annotation holds (``M``, ``M | None``, ``list[M]``), if one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def unknown_key_message(loc: Sequence[int | str], root: type[BaseModel] | None = None) -> str:
    """``unknown key``, with a hint when one is clear, for the key at the end of ``loc``.

    ``root``: the document's model when it is not a bundle's (a policy test
    case), so the key meant is looked for among that document's keys."""
    key = loc[-1] if loc else None
    if not isinstance(key, str):
        return "unknown key"
    if root is not None:
        return _closest(key, sorted(keys_at(root, loc[:-1]) or ()))
    in_condition = any(part in CONDITION_PARENTS for part in loc[:-1])
    if not in_condition and key in _condition_keys():
        return f"unknown key ('{key}' is a condition: indent it under 'when' or 'unless')"
    if in_condition and key in _rule_keys() - _condition_keys():
        return f"unknown key ('{key}' belongs to the rule: indent it as far as 'when')"
    return _closest(key, sorted(_condition_keys()) if in_condition else _every_key())


def _closest(key: str, universe: Sequence[str]) -> str:
    synonym = SYNONYMS.get(key, "")
    close = [synonym] if synonym in universe else []
    close = close or difflib.get_close_matches(key, universe, n=1, cutoff=0.75)
    return f"unknown key (did you mean '{close[0]}'?)" if close else "unknown key"


def not_a_mapping_message(value: object) -> str:
    """For a scalar or list where the schema wants a mapping (pydantic: "Input
    should be a valid dictionary or instance of Effective")."""
    kind = {str: "a string", list: "a list", bool: "true/false", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)  # fmt: skip
    return f"should be a mapping of keys to values, e.g. {{key: value}} (got {kind})"
