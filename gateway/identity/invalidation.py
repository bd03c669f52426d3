"""Invalidation of cached identities: what kinds of entry there are, the
hooks and listeners an identifier calls when one changes, and the helpers
admin routes call to drop one.

Separate from ``gateway.identity.identifier``, the cache itself: the cluster
bus (``gateway.ops.cluster``), the live streams (``gateway.proxy.live_streams``)
and the admin routes only speak this vocabulary, and the helpers work with
any identifier, dropping nothing from one that does not cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, runtime_checkable

InvalidationKind = Literal["customer", "key"]
InvalidationHook = Callable[[InvalidationKind, str], Awaitable[None] | None]
ChangeListener = Callable[[InvalidationKind, str], None]


@runtime_checkable
class Invalidating(Protocol):
    async def invalidate_key(self, key_id: str, propagate: bool = True) -> None: ...
    async def invalidate_customer(self, customer_id: str, propagate: bool = True) -> None: ...


async def invalidate_customer(identifier: object, customer_id: str) -> None:
    """Drop a customer from ``identifier``'s cache when it supports invalidation."""
    if isinstance(identifier, Invalidating):
        await identifier.invalidate_customer(customer_id)


async def invalidate_key(identifier: object, key_id: str) -> None:
    if isinstance(identifier, Invalidating):
        await identifier.invalidate_key(key_id)
