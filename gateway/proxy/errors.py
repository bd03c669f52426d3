"""Every refusal, rendered in the error shape of the API the client speaks.

OpenAI:    {"error": {"message", "type", "param", "code"}}
Anthropic: {"type": "error", "error": {"type", "message", "code"}}

The status -> type table follows SPEC section 2; Anthropic bodies also carry
``code`` (the deciding rule id on a 403) as an additive field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from gateway.policy.facts import ApiShape
from gateway.stages import StageUnavailable

_OPENAI_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_denied",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_exceeded",
    431: "invalid_request_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "api_error",
}
_ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",  # Anthropic: "also used for other 4XX status codes"
    413: "request_too_large",
    429: "rate_limit_error",
    431: "request_too_large",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
}


@dataclass(slots=True)
class ProxyError(Exception):
    """A refusal on the proxied API. Raised by any stage, rendered once."""

    status: int
    message: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


def api_for_path(path: str) -> ApiShape:
    """Anthropic's routes are ``/v1/messages*``; everything else speaks OpenAI."""
    return "anthropic" if path.startswith("/v1/messages") else "openai"


def request_id_header(api: ApiShape, decision_id: str) -> tuple[bytes, bytes]:
    """The header each SDK reads as ``error.request_id`` (``x-request-id`` in
    OpenAI's, ``request-id`` in Anthropic's), carrying the decision id on the
    gateway's own refusals: the id a developer quotes to support is then the
    key to the refusal's audit record. An upstream's answer keeps its own."""
    return (b"request-id" if api == "anthropic" else b"x-request-id", decision_id.encode())


def error_type(api: ApiShape, status: int) -> str:
    table = _ANTHROPIC_TYPES if api == "anthropic" else _OPENAI_TYPES
    return table.get(status, "api_error")


def render_error(api: ApiShape, error: ProxyError) -> bytes:
    kind = error_type(api, error.status)
    if api == "anthropic":
        body: dict[str, object] = {
            "type": "error",
            "error": {"type": kind, "message": error.message},
        }
        if error.code is not None:
            body["error"]["code"] = error.code  # type: ignore[index]
        return orjson.dumps(body)
    return orjson.dumps(
        {
            "error": {
                "message": error.message,
                "type": kind,
                "param": error.param,
                "code": error.code,
            }
        }
    )


def join_reasons(reasons: Iterable[str]) -> str:
    """The reasons of every matching deny rule as one message.

    Reasons are written as sentences ("... is not permitted.") or as fragments
    ("sanctions screening status is confirmed_match"): a sentence is followed
    by a space, a fragment by "; ", so neither ".;" nor run-together text.
    """
    joined = ""
    for reason in (r.strip() for r in reasons):
        if not reason:
            continue
        if joined:
            joined += " " if joined.endswith((".", "!", "?")) else "; "
        joined += reason
    return joined


# The 503 of every stage that cannot decide or record (fail closed), and the
# rule id a refusal without a policy decision is recorded under.
def unavailable(exc: StageUnavailable, after: str = "; it was not forwarded") -> ProxyError:
    """``after``: what became of the request (a list answered by the gateway
    itself was never going to be forwarded)."""
    return ProxyError(
        503,
        f"the gateway cannot decide or record this request right now ({exc.component} store "
        f"unavailable){after}",
        code=f"{exc.component}_unavailable",
        headers={"retry-after": "1"},
    )


def rule_for_status(status: int) -> str:
    return {
        400: "malformed-request",
        401: "authentication-failed",
        404: "no-such-route",
        405: "method-not-allowed",
        408: "request-timeout",
        413: "request-too-large",
        431: "request-headers-too-large",
        503: "gateway-unavailable",
    }.get(status, f"refused-{status}")
