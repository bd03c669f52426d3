"""Process settings, read once from ``GATEWAY_*`` environment variables.

Every knob an operator can turn lives here, validated at start-up so that a
misconfiguration is a clear start-up error, never a 500 at request time. How
single values are parsed and checked is in ``gateway.settings_checks``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.settings_checks import (
    database_driver,
    empty_secret_is_unset,
    known_level,
    oidc_needs_audience,
    parse_cidrs,
    parse_ids,
    parse_nat64,
    parse_prompt_ids,
    positive,
    redis_scheme,
    strip_slash,
    unguessable_admin_token,
    upstream_required,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_STALENESS_SECONDS = 3600
"""Upper bound of the settings that delay a compliance change (cache TTL,
change-feed poll, KYC webhook window)."""


class Settings(BaseSettings):
    """All ``GATEWAY_*`` variables of SPEC section 1, plus tuning knobs."""

    # allow_inf_nan=False: "inf" as a cache TTL or poll interval would pass a
    # ``ge=0`` bound and mean "never"; "nan" compares false with everything.
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", extra="ignore", frozen=True, allow_inf_nan=False
    )

    database_url: str = "sqlite+aiosqlite:///./gateway.db"
    redis_url: str | None = None
    policy_dir: Path = Path("./policies")
    upstream_url: str | None = None
    upstream_api_key: str | None = None
    # Send the upstream ``X-Forwarded-For: <the client address the gateway
    # resolved>`` (the client's own forwarding headers are always dropped:
    # gateway.proxy.headers). Off by default: the address is the customer's
    # personal data, and the provider serves the gateway's account, not theirs.
    upstream_forwarded_for: bool = False
    admin_token: str | None = None
    # Per admin token and process: POST /admin/v1/policy/test and /policy/impact
    # runs (CPU work of seconds each) in any minute (gateway.admin.policy_runs).
    admin_policy_runs_per_minute: int = Field(default=20, ge=1)
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    # Network-specific NAT64/SIIT prefixes (RFC 6052) in front of the gateway:
    # an IPv4 client arrives as an IPv6 address under one of them and is
    # located on the IPv4 address it carries (64:ff9b::/96 always is).
    nat64_prefixes: Annotated[tuple[ipaddress.IPv6Network, ...], NoDecode] = ()
    # Upstream files, vector stores and custom skills the operator made for
    # every customer: any customer may name them by id (gateway.proxy.references).
    shared_file_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    shared_vector_store_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    shared_skill_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    # Stored prompts (Responses ``prompt.id``) any customer may run; None (unset
    # or empty): any prompt id is forwarded, as before, and noted in the record.
    shared_prompt_ids: Annotated[frozenset[str] | None, NoDecode] = None
    geoip_db: Path | None = None
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_customer_claim: str = "sub"
    oidc_jwks_min_refresh_seconds: float = Field(default=10.0, ge=0)
    """An unknown ``kid`` refetches the JWKS at most this often (key rotation vs junk kids)."""
    # How long a fetched JWKS is used (less when its Cache-Control says so):
    # the bound on how long a signing key the issuer withdrew still verifies
    # tokens, so at most an hour, as the other staleness bounds.
    oidc_jwks_ttl_seconds: float = Field(default=300.0, ge=1, le=MAX_STALENESS_SECONDS)
    audit_signing_key: str | None = None
    """Ed25519 private key: a path to a PEM file, or base64 of the 32 raw bytes."""

    # Demo mode: bundled policies, SQLite, in-process stand-in upstream.
    demo: bool = False

    # Upstream behaviour.
    upstream_connect_timeout: float = Field(default=5.0, gt=0)
    upstream_read_timeout: float = Field(default=300.0, gt=0)
    upstream_pool_size: int = Field(default=512, ge=1)
    max_body_bytes: int = 10 * 1024 * 1024
    # The longest a request body may take to arrive whole (408 past it): a
    # client dripping its body a byte at a time, or sending none after its
    # headers, would otherwise hold its request open as long as it liked. At
    # most an hour, or a typo could make it "never".
    body_read_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)

    # Policy hot reload.
    policy_watch: bool = True

    # Audit log.
    node_id: str | None = None
    """This replica's audit chain id; defaults to a stable id derived from the host."""
    audit_batch_max: int = Field(default=256, ge=1)
    audit_batch_wait_ms: float = Field(default=1.0, ge=0)
    """Longest a group commit waits for records still on their way (0: never waits).
    A lone request never waits: see ``gateway.audit.writer_schedule``."""
    # Checkpoints are what make a deleted or edited record detectable: at
    # least one record per checkpoint and a finite interval.
    audit_checkpoint_every: int = Field(default=1000, ge=1)
    audit_checkpoint_seconds: float = Field(default=60.0, gt=0)
    """Also the writer's signing cadence that ``verify`` holds unsigned records to."""
    audit_ip_truncate: Literal["none", "24_48"] = "none"
    # 0 or fewer days would make every record "past retention" for `audit prune`
    # (everything up to the newest checkpoint, today's records included). Under
    # 5 years (EAR 15 CFR 762.6) is allowed for other regimes; prune says so.
    audit_retention_days: int = Field(default=5 * 365, ge=1)
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"

    # Sanctions screening.
    sanctions_list: Path | None = None
    # Scores are 0..1 (an exact listed name is 1.0): above 1 nothing ever
    # matches, so screening is silently off; at 0 every name is a match.
    sanctions_threshold: float = Field(default=0.9, gt=0, le=1)
    # More customers to re-screen at start-up than this (a new list or
    # threshold): ``gateway serve`` serves at once and screens them in the
    # background, holding each until it is (gateway.kyc.list_update).
    rescreen_inline_max: int = Field(default=2000, ge=0)
    # Hold a clear of another list or threshold until re-screened (served as
    # public). Off: such verdicts stand until the rescreen reaches them, for a
    # base too large to serve as public for the hours a rescreen may take.
    rescreen_hold: bool = True

    # KYC vendor webhook secrets (two accepted during rotation).
    kyc_webhook_secret: str | None = None
    kyc_webhook_secret_previous: str | None = None
    # The replay window, and how far in the future an event may be dated: an
    # hour at most (vendors sign at send time; Stripe's own default is 300 s).
    kyc_webhook_tolerance_seconds: int = Field(default=300, gt=0, le=MAX_STALENESS_SECONDS)
    # Each vendor issues its own signing secret. When a vendor's is set, its
    # signature header is checked against it (and its _PREVIOUS) only; unset,
    # against GATEWAY_KYC_WEBHOOK_SECRET as before (gateway.admin.kyc_webhook).
    kyc_persona_secret: str | None = None
    kyc_persona_secret_previous: str | None = None
    kyc_stripe_secret: str | None = None
    kyc_stripe_secret_previous: str | None = None
    # What a vendor's pass (Persona inquiry.approved/completed, Stripe
    # identity.verification_session.verified) grants: this KYC level, valid
    # this many days from the vendor's event time. The level must be one of the
    # policy bundle's kyc_levels; that is checked per event against the bundle
    # in force (a reload may drop it), the name's syntax here.
    kyc_vendor_level: str = Field(default="id_verified", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    kyc_vendor_validity_days: int = Field(default=365, ge=1, le=3650)

    # Principal cache staleness bound across replicas (seconds).
    # Both bound how long a revoked key or suspended customer may still be
    # served somewhere: at most an hour, or a typo could make it "never".
    cache_ttl_seconds: float = Field(default=30.0, ge=0, le=MAX_STALENESS_SECONDS)
    # How often each process reads the admin change feed (gateway.ops.changefeed):
    # the bound on how long a change made anywhere (CLI included) takes to be in
    # force here. 0 turns the feed off (the cache TTL is then the bound).
    change_poll_seconds: float = Field(default=1.0, ge=0, le=MAX_STALENESS_SECONDS)
    # Without Redis: how often each process looks for other gateways serving
    # the same database (gateway.quota.peers), whose quota counters are not
    # shared with its own. Off the hot path; one small query.
    quota_peer_check_seconds: float = Field(default=30.0, gt=0, le=MAX_STALENESS_SECONDS)
    # PostgreSQL: how long connecting, and (in the serving process) any one
    # statement, may take. A server that stops answering without closing its
    # connections (a network partition, a frozen host) would otherwise hold
    # every request's audit commit, /readyz and the admin API indefinitely,
    # instead of failing closed with a 503.
    database_timeout_seconds: float = Field(default=5.0, gt=0)
    # PostgreSQL connections per process: pool + overflow, times workers and
    # replicas, must stay under the server's max_connections. The audit
    # writer keeps one for good, so fewer than 2 would starve everything else.
    database_pool_size: int = Field(default=10, ge=2)
    database_max_overflow: int = Field(default=20, ge=0)

    # Refusals of callers the gateway cannot identify (401s, and 404/405/413
    # without a valid key), per client address (IPv6: per /64) and fixed
    # window: past the limit they are answered 429 and summarised in one
    # record per address and window instead of one each (gateway.proxy.probes).
    # 0 turns the limit off (one record per refusal, however many).
    unauthenticated_limit: int = Field(default=60, ge=0)
    unauthenticated_window_seconds: int = Field(default=60, ge=1, le=MAX_STALENESS_SECONDS)

    log_level: str = "info"
    log_json: bool = True

    # Graceful shutdown (gateway.ops.shutdown): after SIGTERM, /readyz answers
    # 503 for this long while requests are still served, so a load balancer
    # drains the replica before it stops accepting.
    shutdown_drain_seconds: float = Field(default=5.0, ge=0)

    # Parsers and checks of single values (gateway.settings_checks), attached
    # under the names they always had, in the order they always ran.
    _parse_cidrs = field_validator("trusted_proxies", mode="before")(parse_cidrs)
    _parse_ids = field_validator(
        "shared_file_ids", "shared_vector_store_ids", "shared_skill_ids", mode="before"
    )(parse_ids)
    _parse_prompt_ids = field_validator("shared_prompt_ids", mode="before")(parse_prompt_ids)
    _parse_nat64 = field_validator("nat64_prefixes", mode="before")(parse_nat64)
    _strip_slash = field_validator("upstream_url")(strip_slash)
    _positive = field_validator("max_body_bytes")(positive)
    _database_driver = field_validator("database_url")(database_driver)
    _redis_scheme = field_validator("redis_url")(redis_scheme)
    _known_level = field_validator("log_level")(known_level)
    _unguessable_admin_token = field_validator("admin_token")(unguessable_admin_token)
    _empty_secret_is_unset = field_validator(
        "kyc_webhook_secret", "kyc_webhook_secret_previous", "kyc_persona_secret",
        "kyc_persona_secret_previous", "kyc_stripe_secret", "kyc_stripe_secret_previous",
    )(empty_secret_is_unset)  # fmt: skip
    _oidc_needs_audience = model_validator(mode="after")(oidc_needs_audience)
    _upstream_required = model_validator(mode="after")(upstream_required)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None for another engine or in-memory."""
        if not self.is_sqlite:
            return None
        _, _, rest = self.database_url.partition(":///")
        if not rest or rest.startswith(":memory:"):
            return None
        return Path(rest)


def trusted_networks(settings: Settings) -> tuple[IPNetwork, ...]:
    return settings.trusted_proxies


class SettingsError(Exception):
    """Raised with a human message when settings fail validation."""


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning validation errors into one message."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            name = f"GATEWAY_{loc.upper()}" if loc else "settings"
            lines.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from exc


__all__ = ["Field", "Settings", "SettingsError", "load_settings"]
