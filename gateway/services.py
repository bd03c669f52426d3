"""The long-lived objects one process holds, built in ``app.py``'s lifespan.

Routers reach them through ``request.app.state.services`` (see ``ServicesDep``
in ``gateway/deps.py``); nothing here is a module-level global.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.settings import Settings
from gateway.stages import AuditSink, Identifier, Locator, QuotaMeter

if TYPE_CHECKING:
    from gateway.policy.holder import PolicyHolder
    from gateway.proxy.batch_state import BatchOwners
    from gateway.proxy.live_streams import LiveStreams
    from gateway.proxy.probes import ProbeLimiter
    from gateway.proxy.reference_owners import ReferenceOwners
    from gateway.proxy.response_owners import ResponseOwners
    from gateway.proxy.upstream import UpstreamClient


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    policy: PolicyHolder
    identifier: Identifier
    locator: Locator
    meter: QuotaMeter
    audit: AuditSink
    upstream: UpstreamClient
    clock: Callable[[], datetime]
    extras: dict[str, Any] = field(default_factory=dict)
    """Optional components (sanctions screener, cache bus, metrics) by name."""
    response_owners: ResponseOwners | None = None
    """Who each upstream-stored response belongs to (None: continuations refused)."""
    batch_owners: BatchOwners | None = None
    """Who each Message Batch belongs to (None: every call on a batch by id is 404)."""
    probes: ProbeLimiter | None = None
    """The limit on unauthenticated refusals per address (None: off)."""
    reference_owners: ReferenceOwners | None = None
    """Who each relayed item and container id belongs to (None: naming one is 404)."""
    live_streams: LiveStreams | None = None
    """The streams in flight by customer and key: an account change ends the
    ones it refuses (None: streams are decided once, and by cut rules)."""
    draining: bool = False
    """Set on SIGTERM: /readyz turns false so the load balancer stops sending."""
