"""Header hygiene between client, gateway and upstream (RFC 9110 section 7.6.1).

Inbound: the client's credentials and any ``x-gateway-*`` header are dropped,
so a client can neither leak its gateway key upstream nor spoof the identity
headers the upstream trusts. Hop-by-hop headers, and any header the
``Connection`` header names, are per-connection and never forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway.policy.facts import ApiShape

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway itself (or recomputed by the HTTP client) on the way out.
_NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"authorization", b"x-api-key"}
_GATEWAY_PREFIX = b"x-gateway-"


def _connection_tokens(raw_headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in raw_headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def upstream_request_headers(
    raw_headers: list[tuple[bytes, bytes]],
    api: ApiShape,
    upstream_api_key: str | None,
    identity: Mapping[str, str],
) -> dict[str, str]:
    """The headers sent upstream: the client's, cleaned, plus the gateway's own."""
    named = _connection_tokens(raw_headers)
    out: dict[str, str] = {}
    for name, value in raw_headers:
        lname = name.lower()
        if lname in _NOT_FORWARDED or lname in named or lname.startswith(_GATEWAY_PREFIX):
            continue
        out[lname.decode("latin-1")] = value.decode("latin-1")
    if upstream_api_key:
        if api == "anthropic":
            out["x-api-key"] = upstream_api_key
        else:
            out["authorization"] = f"Bearer {upstream_api_key}"
    out.update(identity)
    return out


def client_response_headers(
    upstream_headers: Iterable[tuple[str, str]],
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers minus hop-by-hop ones and the length
    (the ASGI server frames the body itself)."""
    items = list(upstream_headers)
    named = {
        t.strip().lower().encode("latin-1")
        for n, v in items
        if n.lower() == "connection"
        for t in v.split(",")
    }
    out: list[tuple[bytes, bytes]] = []
    for name, value in items:
        lname = name.lower().encode("latin-1")
        if lname in HOP_BY_HOP or lname in named or lname == b"content-length":
            continue
        if lname.startswith(_GATEWAY_PREFIX):
            continue  # only the gateway sets x-gateway-* toward the client
        out.append((lname, value.encode("latin-1")))
    return out
