"""How single ``GATEWAY_*`` values are parsed and checked (``gateway.settings``).

Plain functions: ``Settings`` attaches each one as a pydantic validator of the
fields it names, so a bad value is refused at start-up with the message
raised here. Separate from the settings class, which stays one list of every
variable, its default and its bounds; these are the rules that do not fit on
a field.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from gateway.geo.addresses import NAT64_PREFIX_LENGTHS

if TYPE_CHECKING:
    from gateway.settings import Settings

MIN_ADMIN_TOKEN_CHARS = 32
"""128 bits as hex: a bootstrap token that no rate of guessing finds."""


def parse_cidrs(value: object) -> object:
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts)
    return value


def parse_ids(value: object) -> object:
    if isinstance(value, str):
        return frozenset(p.strip() for p in value.split(",") if p.strip())
    return value


def parse_prompt_ids(value: object) -> object:
    if isinstance(value, str):
        return frozenset(p.strip() for p in value.split(",") if p.strip()) or None
    return value


def parse_nat64(value: object) -> object:
    if not isinstance(value, str):
        return value
    prefixes = []
    for part in (p.strip() for p in value.replace(";", ",").split(",")):
        if not part:
            continue
        net = ipaddress.ip_network(part, strict=False)  # ValueError names the text
        if net.version != 6 or net.prefixlen not in NAT64_PREFIX_LENGTHS:
            lengths = ", ".join(f"/{n}" for n in sorted(NAT64_PREFIX_LENGTHS))
            raise ValueError(f"{part}: a NAT64 prefix is an IPv6 network of {lengths}")
        prefixes.append(net)
    return tuple(prefixes)


def strip_slash(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


def positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be positive")
    return value


def database_driver(value: str) -> str:
    # The two async drivers the gateway ships with; anything else would
    # fail later, in SQLAlchemy's import machinery, as a traceback.
    if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError(
            "must start with sqlite+aiosqlite:/// or postgresql+asyncpg:// "
            "(for postgresql://... write postgresql+asyncpg://...)"
        )
    return value


def redis_scheme(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return value


def known_level(value: str) -> str:
    level = value.strip().lower()
    if level not in ("critical", "error", "warning", "info", "debug"):
        raise ValueError("must be one of critical, error, warning, info, debug")
    return level


def unguessable_admin_token(value: str | None) -> str | None:
    # The admin lockout admits a valid bootstrap token even from an address
    # that is locked out (so an attacker cannot lock the operators out;
    # gateway.admin.auth), which is only sound if the token cannot be
    # guessed at any rate. Never echo the value: it is a secret.
    if value is None or not value.strip():
        return None
    if len(value) < MIN_ADMIN_TOKEN_CHARS:
        raise ValueError(
            f"must be at least {MIN_ADMIN_TOKEN_CHARS} random characters "
            f"(e.g. `openssl rand -hex 32`), got {len(value)}"
        )
    return value


def empty_secret_is_unset(value: str | None) -> str | None:
    # `GATEWAY_KYC_STRIPE_SECRET=` in an env file means "not configured",
    # never "sign with the empty key" (which anyone can compute).
    if value is None or not value.strip():
        return None
    return value


def oidc_needs_audience(settings: Settings) -> Settings:
    # A token for any audience of the issuer (another app's) must not pass.
    if settings.oidc_issuer and not settings.oidc_audience:
        raise ValueError("GATEWAY_OIDC_AUDIENCE must be set when GATEWAY_OIDC_ISSUER is")
    return settings


def upstream_required(settings: Settings) -> Settings:
    if not settings.demo and settings.upstream_url is None:
        raise ValueError(
            "GATEWAY_UPSTREAM_URL is not set: point it at the model API "
            "(e.g. https://api.example.com) or run `gateway serve --demo`"
        )
    return settings
