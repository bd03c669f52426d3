"""Keys narrowed below their customer's tier: ``allowed_models``, ``allowed_capabilities``.

A customer hands one key to a CI job and another to a chat product; each
should reach only what its use needs, so that a leaked key cannot drive the
strongest model or an agent loop. A key's scope only ever narrows: the tier,
the rules and the quotas still decide everything the scope lets through.

The engine checks the scope after the bundle's deny rules: a request a rule
refuses (a sanctioned origin, a directive) is recorded with that rule, not
with the scope, so an auditor's question "was anyone from X served?" reads
the same rule ids whatever key was used.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.identity.principal import Principal

KEY_SCOPE = "key-scope"
"""The rule id recorded for a request outside its key's scope (403)."""


def key_scope_refusal(
    principal: Principal, model: str, capabilities: frozenset[str]
) -> str | None:
    """Why the key used may not make this request, or None when it may."""
    models = principal.key_models
    if models is not None and model not in models:
        return f"This key may use {_listed(models)} only, not '{model}'."
    allowed = principal.key_capabilities
    if allowed is not None and not capabilities <= allowed:
        may = _listed(allowed) if allowed else "none"
        return (f"This key may not make {_listed(capabilities - allowed)} requests "
                f"(capabilities it may use: {may}).")
    return None


def unknown_scope_names(
    allowed_models: Iterable[str] | None,
    allowed_capabilities: Iterable[str] | None,
    models: Iterable[str],
    capabilities: Iterable[str],
) -> dict[str, str]:
    """``{field: message}`` for names a bundle does not define (a typo would make
    a key that can never be used, found out in production)."""
    problems = {}
    for field, given, known, what in (
        ("allowed_models", allowed_models, tuple(models), "model"),
        ("allowed_capabilities", allowed_capabilities, tuple(capabilities), "capability"),
    ):
        unknown = sorted(set(given or ()) - set(known))
        if unknown:
            problems[field] = (f"{', '.join(map(repr, unknown))}: not a {what} of the loaded "
                               f"policy bundle; defined: {', '.join(known) or 'none'}")
    return problems


def _listed(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in sorted(names))
