"""Warnings about a tier's quota that let requests past their token limits.

Both are legal bundles that do not do what they read as: a capability entry
with no token limit while ``default`` has one, and token limits with no
``default_max_tokens`` (so a request naming no bound goes unbounded).
"""

from __future__ import annotations

from collections.abc import Iterator

from gateway.policy import schema as s
from gateway.policy.yamlsrc import DataPath

_TOKEN_LIMITS = frozenset({"tokens_per_minute", "tokens_per_day"})


def unbounded_output(tier: str, quota: s.TierQuota) -> Iterator[tuple[DataPath, str]]:
    """Warn where a tier with token limits gives no ``default_max_tokens``.

    A request naming no bound is then forwarded unbounded: it reserves only
    its input, an upstream may generate up to the model's limit against it,
    and ``max_tokens_over`` never matches it (``facts.with_output_bound``).
    """
    if quota.default_max_tokens is not None:
        return
    entries = [quota.default, *quota.capability_limits().values()]
    if any(limits is not None and {k for k, _ in limits.items()} & _TOKEN_LIMITS
           for limits in entries):
        yield (
            ("quotas", tier),
            "token limits but no 'default_max_tokens': a request that names no "
            "max_tokens is forwarded unbounded, reserves only its input and never "
            "matches max_tokens_over",
        )


def token_escape(tier: str, quota: s.TierQuota) -> Iterator[tuple[DataPath, str]]:
    """Warn where a capability entry drops the token limits ``default`` sets.

    A request is metered against the entries of its capabilities *instead
    of* ``default``: an ``agentic`` entry with only a request rate makes
    any request that adds one dummy tool free of every token limit, the
    cheapest way around a token quota there is.
    """
    if quota.default is None:
        return
    default_kinds = {kind for kind, _ in quota.default.items()} & _TOKEN_LIMITS
    if not default_kinds:
        return
    for cap, limits in quota.capability_limits().items():
        if any(value == 0 for _, value in limits.items()):
            continue  # not offered: nothing to escape into
        if not {kind for kind, _ in limits.items()} & _TOKEN_LIMITS:
            yield (
                ("quotas", tier, cap),
                f"'{cap}' sets no token limit while 'default' does "
                f"({', '.join(sorted(default_kinds))}): requests carrying '{cap}' "
                "are metered on this entry only, so they have no token limit",
            )
