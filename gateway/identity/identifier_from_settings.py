"""The identify stage as the settings configure it: the key cache with its TTL,
and an OIDC verifier when an issuer is set.

Separate from ``gateway.identity.identifier``, the cache, which runs on every
request and needs no settings; this runs once, when the app is assembled.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.identity.identifier import GatewayIdentifier
from gateway.settings import Settings


def build_identifier(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> GatewayIdentifier:
    """The identify stage for these settings; call ``start()``/``stop()`` in the lifespan."""
    oidc = None
    if settings.oidc_issuer:
        # Imported only when configured: it brings an HTTP client (httpx) along.
        from gateway.identity.oidc import OidcVerifier

        if not settings.oidc_audience:
            raise ValueError("GATEWAY_OIDC_AUDIENCE must be set when GATEWAY_OIDC_ISSUER is")
        oidc = OidcVerifier(
            settings.oidc_issuer,
            settings.oidc_audience,
            settings.oidc_customer_claim,
            jwks_ttl_seconds=settings.oidc_jwks_ttl_seconds,
            min_refresh_seconds=settings.oidc_jwks_min_refresh_seconds,
        )
    return GatewayIdentifier(sessions, settings.cache_ttl_seconds, oidc)
