"""The interfaces between the stages of the request corridor.

    client -> identify -> locate -> classify -> decide -> meter -> record -> forward -> settle

Each stage lives in its own package and implements one of these small
protocols; ``gateway/proxy/pipeline.py`` walks a request through them and
``gateway/app.py`` assembles the concrete objects. Pure stages (classify,
decide) are plain functions in ``gateway.policy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from gateway.audit.record import DecisionRecord, OutcomeRecord
from gateway.geo.origin import Origin
from gateway.identity.principal import Principal
from gateway.policy.decision import QuotaLimit, QuotaPlan

if TYPE_CHECKING:
    from gateway.policy.compiled import CompiledBundle


# --- failures every stage may raise; the pipeline maps them to statuses ----


class AuthenticationFailed(Exception):
    """No credential, or one that does not verify: 401."""

    def __init__(self, message: str, key_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key_id = key_id


class StageUnavailable(Exception):
    """A store the decision depends on cannot answer: 503, fail closed."""

    component: str = "gateway"


class AuditUnavailable(StageUnavailable):
    component = "audit"


class QuotaStoreUnavailable(StageUnavailable):
    component = "quota"


class IdentityStoreUnavailable(StageUnavailable):
    component = "identity"


# --- identify ---------------------------------------------------------------


class Identifier(Protocol):
    async def identify(
        self, bearer: str | None, api_key: str | None, authorization_problem: str | None = None
    ) -> Principal:
        """Resolve ``Authorization: Bearer`` or ``x-api-key`` to a Principal.

        ``authorization_problem`` says why an ``Authorization`` header that was
        sent gave no bearer token (``gateway.identity.bearer``); it is the 401's
        message when no other credential is present.

        Raises AuthenticationFailed (401) or IdentityStoreUnavailable (503).
        A cached key never touches the database.
        """
        ...


# --- locate -----------------------------------------------------------------


class Locator(Protocol):
    def locate(self, peer_ip: str | None, forwarded_for: str | None) -> Origin:
        """The believed client IP (XFF only from trusted proxies) and its place."""
        ...


# --- policy source ----------------------------------------------------------


class PolicySource(Protocol):
    @property
    def current(self) -> CompiledBundle:
        """The snapshot in force now; a request keeps the one it started with."""
        ...


# --- meter / settle ---------------------------------------------------------


@dataclass(slots=True)
class Usage:
    tokens_in: int | None = None
    tokens_out: int | None = None

    @property
    def total(self) -> int | None:
        if self.tokens_in is None and self.tokens_out is None:
            return None
        return (self.tokens_in or 0) + (self.tokens_out or 0)


@dataclass(slots=True)
class Admission:
    """The quota stage's answer for one request."""

    allowed: bool
    refused_by: QuotaLimit | None = None
    retry_after_seconds: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """``x-ratelimit-*`` headers of the tightest bucket."""
    resets_ms: dict[str, int] = field(default_factory=dict)
    """Each header trio's reset (``"requests"``, ``"tokens"``) in ms from
    ``at_ms``: Anthropic's headers state it as an instant."""
    at_ms: int = 0
    """When the request was admitted (ms since the epoch)."""
    summary: dict[str, object] = field(default_factory=dict)
    """What goes into the decision record's ``quota`` field."""
    reserved_tokens: int = 0
    lease: object | None = None
    """Opaque handle for the concurrent-stream slot and token reservation."""
    fail_open: bool = False
    """Admitted because the store was down and the tier is configured fail-open."""


class QuotaMeter(Protocol):
    async def admit(
        self,
        customer_id: str,
        plan: QuotaPlan,
        streaming: bool,
        tokens_wanted: int,
        now: datetime,
        requests: int = 1,
    ) -> Admission:
        """Check and consume every bucket of the plan; reserve tokens and a stream slot.

        Raises QuotaStoreUnavailable when the store is down and the plan is fail-closed.
        """
        ...

    async def settle(self, admission: Admission, usage: Usage | None) -> None:
        """Settle the token reservation to real usage (None: the call failed,
        release it all) and release the stream slot."""
        ...

    async def charge(self, customer_id: str, plan: QuotaPlan, tokens: int) -> None:
        """Add ``tokens`` to every token window of the plan now, with no admission
        (a late charge: a Message Batch's results used more than it reserved).

        Raises QuotaStoreUnavailable when the store is down."""
        ...


# --- record -----------------------------------------------------------------


class AuditSink(Protocol):
    def expect_decision(self) -> None:
        """A request has started that will ``record`` a decision soon.

        A hint for group commit only: the sink may wait (briefly) for records
        it knows are coming. Balanced by ``record`` or ``cancel_expected``.
        """
        ...

    def cancel_expected(self) -> None:
        """A request announced with ``expect_decision`` ended without recording."""
        ...

    async def record(self, record: DecisionRecord) -> None:
        """Durably commit the record (group commit) before returning.

        Raises AuditUnavailable: the request must then get 503 and not be forwarded.
        """
        ...

    async def record_many(self, records: list[DecisionRecord]) -> None:
        """Commit several decisions of one request together (as ``record``)."""
        ...

    async def record_outcome(self, outcome: OutcomeRecord) -> None:
        """Append the outcome record; queued into the next batch."""
        ...

    async def record_event(self, kind: str, payload: dict[str, Any], *, wait: bool = True,
                           record_id: str | None = None) -> str:
        """Append an event record (``policy_reload``, ``batch_bound``...);
        with ``wait``, returns after COMMIT and raises AuditUnavailable."""
        ...
