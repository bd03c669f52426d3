"""The proxied API's paths, and how a near miss is recognised.

Only the exact paths below are served and forwarded (SPEC section 2). A path
that spells one of them with other case or extra slashes (``/V1/messages``,
``//v1/chat/completions``, ``/v1//models``) is *not* normalised onto it:
the policy's ``endpoint_in``, the audit record, the upstream and any proxy in
front of the gateway must all see one spelling of each route, and a client
that gets the path wrong is better told so than silently served. Such a path
is still inside the API's space, though (``in_api_space``): it is refused the
way an unknown ``/v1/*`` path is, recorded and in the client's error shape,
rather than falling through to the admin app's ``{"detail": "Not Found"}``.
"""

from __future__ import annotations

POST_ROUTES = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/messages",
        "/v1/messages/count_tokens",
    }
)
MODELS_ROUTE = "/v1/models"
ROUTES = POST_ROUTES | {MODELS_ROUTE}
API_PREFIX = "/v1/"


def folded(path: str) -> str:
    """``path`` lower-cased with empty segments dropped: what a near miss was meant to be."""
    return "/" + "/".join(segment for segment in path.lower().split("/") if segment)


def in_api_space(path: str) -> bool:
    """Whether the proxied API answers ``path`` (served, or refused in its own shape)."""
    if path.startswith(API_PREFIX):
        return True  # the hot path: one prefix test
    meant = folded(path)
    return meant == "/v1" or meant.startswith(API_PREFIX)


def meant_route(path: str) -> str | None:
    """The route a misspelt ``path`` stands for, to name it in the refusal."""
    meant = folded(path)
    return meant if meant in ROUTES and meant != path else None
