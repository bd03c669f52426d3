"""Header hygiene between client, gateway and upstream (RFC 9110 section 7.6.1).

Inbound: the client's credentials and any ``x-gateway-*`` header are dropped
(spelt with underscores too),
so a client can neither leak its gateway key upstream nor spoof the identity
headers the upstream trusts. Hop-by-hop headers, and any header the
``Connection`` header names, are per-connection and never forwarded. Nor are
the client's own claims of where it is (``X-Forwarded-For``, ``Forwarded``,
``X-Real-IP``...): the gateway decided on the address it resolved itself,
and the upstream gets that one (``GATEWAY_UPSTREAM_FORWARDED_FOR``, set by
the caller beside ``x-gateway-customer``) or none.
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
# The body's type is the gateway's to state: it decided on the bytes read as
# UTF-8 JSON (``body.check_encoding`` refused anything else), so the upstream
# is told exactly that, and cannot read the same bytes as a different request
# (another charset, a form, a compressed body) than the one that was decided.
#
# ``accept-encoding``: the gateway asks for ``identity`` itself, because it
# reads usage out of the answer to settle token quotas (a gzip answer it
# cannot read stays charged at its whole reservation). ``expect``: the gateway
# already holds the whole body, and an upstream that never sends ``100
# Continue`` would leave the request waiting with no timeout to end it.
#
# ``openai-organization`` / ``openai-project``: they pick which organization or
# project of the gateway's own upstream credential a request runs and is billed
# under (its limits, budget and data controls). That is the operator's choice,
# made with the credential; a customer must not move its calls to another.
#
# The client's address claims: relayed, they told the model provider whatever
# address the client liked, not the one the gateway located and decided on
# (the client's chain is the gateway's input, not the upstream's). As Envoy
# (``use_remote_address``) and Kong (``trusted_ips``) do, the proxy that
# resolved the client states it; the gateway does so only if asked to.
CLIENT_ADDRESS = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-forwarded-server",
        b"forwarded",
        b"x-real-ip",
        b"x-client-ip",
        b"true-client-ip",
        b"cf-connecting-ip",
        b"fastly-client-ip",
        b"x-cluster-client-ip",
        b"x-original-forwarded-for",
        b"x-forwarded",
        b"client-ip",
        b"x-originating-ip",
        b"x-remote-addr",
        b"x-envoy-external-address",
    }
)
# And the families the names above belong to, whatever a proxy, CDN or
# framework calls its own: every ``X-Forwarded-*`` (``-Ssl``, ``-Scheme``,
# ``-Prefix``, ``-Client-Cert``...) and every ``*-IP`` / ``*-Addr``
# (``X-Remote-IP``, ``Fly-Client-IP``, ``CF-Connecting-IPv6``...). Listing
# names one by one left the rest to go upstream as the client wrote them.
_ADDRESS_PREFIX = b"x-forwarded-"
_ADDRESS_SUFFIXES = (b"-ip", b"-ipv6", b"-addr")


_NOT_FORWARDED = HOP_BY_HOP | CLIENT_ADDRESS | {
    b"openai-organization",
    b"openai-project",
    b"host",
    b"content-length",
    b"content-type",
    b"content-encoding",
    b"accept-encoding",
    b"expect",
    b"authorization",
    b"x-api-key",
}
_GATEWAY_PREFIX = b"x-gateway-"
# Dropped by name prefix: the gateway's own headers and the X-Forwarded-* family.
# (CLIENT_ADDRESS is in _NOT_FORWARDED: one set test and two affix tests a header.)
_DROPPED_PREFIXES = (_GATEWAY_PREFIX, _ADDRESS_PREFIX)
# Set by the gateway's server on every answer it sends.
_NOT_RELAYED = HOP_BY_HOP | {b"content-length", b"date", b"server"}
# The upstream's rate limits and account ids are the platform's, not the
# customer's: the gateway states the customer's own ``x-ratelimit-*``, and two
# values under one name (``9999, 594``) break clients that read them.
_PLATFORM_PREFIXES = (b"x-ratelimit-", b"anthropic-ratelimit-")
_PLATFORM_HEADERS = frozenset(
    {b"openai-organization", b"openai-project", b"anthropic-organization-id"}
)


def _connection_tokens(raw_headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in raw_headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def _withheld_spelling(lname: bytes) -> bool:
    """``x_gateway_customer``, ``x_api_key``: another header here, but one that a
    server mapping names into a CGI/WSGI environment (``HTTP_X_GATEWAY_CUSTOMER``)
    reads as the header the gateway sets or strips, possibly taking the client's
    value (nginx drops underscored names by default for this reason)."""
    dashed = lname.replace(b"_", b"-")
    return _dropped(dashed)


def _dropped(lname: bytes) -> bool:
    """A (lower-case, dashed) name never forwarded: see the sets above."""
    return (lname in _NOT_FORWARDED or lname.startswith(_DROPPED_PREFIXES)
            or lname.endswith(_ADDRESS_SUFFIXES))  # fmt: skip


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
        # Inline, not _dropped(): this loop runs for every header of every request.
        if (lname in _NOT_FORWARDED or lname in named or lname.startswith(_DROPPED_PREFIXES)
                or lname.endswith(_ADDRESS_SUFFIXES)):  # fmt: skip
            continue
        if b"_" in lname and _withheld_spelling(lname):
            continue
        out[lname.decode("latin-1")] = value.decode("latin-1")
    out["content-type"] = "application/json"
    out["accept-encoding"] = "identity"
    if upstream_api_key:
        if api == "anthropic":
            out["x-api-key"] = upstream_api_key
        else:
            out["authorization"] = f"Bearer {upstream_api_key}"
    out.update(identity)
    return out


def client_response_headers(
    upstream_headers: Iterable[tuple[bytes, bytes]],
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers (raw bytes, as received) minus
    hop-by-hop ones, the length (the ASGI server frames the body itself),
    ``date``/``server``, which the gateway's own server sets on every answer
    (relaying them too sent each twice; nginx hides them from a proxied
    response for the same reason), and the platform's own rate limits and
    account ids. ``retry-after`` on an upstream 429/529 is relayed."""
    items = [(name.lower(), value) for name, value in upstream_headers]
    named = _connection_tokens(items)
    return [
        (lname, value)
        for lname, value in items
        if lname not in _NOT_RELAYED
        and lname not in named
        # only the gateway sets x-gateway-* toward the client
        and not lname.startswith(_GATEWAY_PREFIX)
        and not lname.startswith(_PLATFORM_PREFIXES)
        and lname not in _PLATFORM_HEADERS
    ]
