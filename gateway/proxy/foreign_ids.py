"""Ids a request names that must be the caller's: stored responses it
continues, and the items, containers, files, audio and vector stores it
refers to (``gateway.proxy.stored_state``, ``gateway.proxy.references``).

Every customer reaches the upstream with the gateway's one credential, so an
id relayed to one customer would open its object to any other that learnt
it. Someone else's id (or one never relayed) is refused as the upstream
answers an id that does not exist: 404, recorded, never forwarded.
"""

from __future__ import annotations

from gateway.proxy.errors import ProxyError
from gateway.proxy.exchange import Exchange
from gateway.proxy.reference_owners import ITEM_RULE
from gateway.proxy.references import CHECKED_WHEN_LISTED
from gateway.proxy.stored_state import STORED_STATE_RULE
from gateway.services import Services


async def check_continued(
    services: Services, ex: Exchange, customer_id: str, ids: tuple[str, ...]
) -> int:
    """Refuse to continue upstream-stored state that is not the caller's
    (``gateway.proxy.stored_state``): 404 as for an id that does not exist.

    Else the tokens of the stored context the upstream will read again as
    input (its usage, where seen), for the token reservation: the body
    carries only the new turn."""
    owners = services.response_owners
    context = 0
    for stored_id in ids:
        bound = await owners.binding_of(stored_id) if owners is not None else None
        if bound is None or bound.customer_id != customer_id:
            message = f"Previous response with id '{stored_id[:128]}' not found."
            ex.refuse(STORED_STATE_RULE, message)
            raise ProxyError(404, message, code=STORED_STATE_RULE)
        context += bound.context_tokens or 0
    return context


async def check_references(
    services: Services, ex: Exchange, customer_id: str, references: tuple[tuple[str, str], ...]
) -> None:
    """Refuse to name upstream items or containers that are not the caller's
    (``gateway.proxy.references``): 404 as for an id that does not exist."""
    owners = services.reference_owners
    if owners is None:
        references = tuple(r for r in references if r[0] not in CHECKED_WHEN_LISTED)
        if not references:
            return
        object_id = references[0][1]
        ex.refuse(ITEM_RULE, f"'{object_id}' cannot be checked: no binding store")
        raise ProxyError(404, f"Item with id '{object_id}' not found.", code=ITEM_RULE)
    await owners.refuse_foreign(ex, customer_id, references)
