"""What a held customer's decision records say of its screening.

A request refused while the customer's sanctions status is not ``clear``
(the status demoted its tier to ``public``, or refused the account) keeps, in
its decision record's facts (``facts.screening``), which screened name
matched which listed name and how closely, so an auditor asking why it was
denied reads the lead itself, not just the status. Bounded: the
``MAX_HITS`` strongest hits no review cleared come first, then cleared ones,
with ``hit_count`` saying how many there were in all.

Computed once, when the principal is loaded into the identify cache
(``gateway.identity.store``), never per request: a ``clear`` customer, whose
requests are most of them, carries None and costs nothing.

A ``clear`` customer last screened against another list or threshold than
the one this process loaded (``awaiting_rescreen``) is held too, as
``potential_match``, until the rescreen reaches it: its records say so, in
``facts.screening.awaiting_rescreen`` when refused and in the tier demotion
(``rescreen_hold``) whatever the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.kyc.sanctions_lists import same_list
from gateway.kyc.schemas import as_utc, rfc3339
from gateway.kyc.tables import Customer

FACTS_KEY = "screening"
MAX_HITS = 5


@dataclass(frozen=True, slots=True)
class ListInForce:
    """The sanctions list (version) and threshold this process screens with."""

    version: str
    threshold: float
    since: datetime
    """When this process loaded it: a record screened later, against whatever
    list, was screened by someone with a list at least as recent."""


def awaiting_rescreen(customer: Customer, in_force: ListInForce | None) -> bool:
    """Is ``customer``'s ``clear`` a verdict of another list or threshold than
    the one in force (or of none), given before this process loaded it? Such
    a customer is held until screened against it (``gateway.kyc.list_update``):
    a list is put in force because it names new parties, and the old verdict
    says nothing of them. A verdict given since, against another list, is
    not held: ``gateway customers rescreen`` run with the next list ahead of
    a restart would otherwise hold every customer it reached."""
    if in_force is None or customer.sanctions_status != "clear":
        return False
    # A NULL threshold: screened against this list before thresholds were kept
    # (migration b4f8e2c6a9d1). The start-up rescreen screens it again; holding
    # every such record meanwhile would take the service from the whole base
    # at the first start after the upgrade.
    threshold = customer.screening_threshold
    if same_list(customer.screening_list_version, in_force.version) and (
        threshold is None or threshold == in_force.threshold
    ):
        return False
    screened_at = customer.screened_at
    return screened_at is None or as_utc(screened_at) < in_force.since


def list_in_force(identifier: object) -> ListInForce | None:
    """The list a serving process's identifier holds customers to (None: no
    list, the hold turned off, or an identifier without one), for the admin
    routes that build a customer's principal themselves (explain, usage): they
    must see a held customer as the proxy does."""
    found = getattr(identifier, "list_in_force", None)
    return found if isinstance(found, ListInForce) else None


def rescreen_hold(customer: Customer, in_force: ListInForce) -> str:
    """The tier demotion of a customer ``awaiting_rescreen``: its status reads
    ``potential_match`` (what it is served as) though the record says ``clear``
    and names no hit, so the reason says what the hold waits for. Computed at
    cache load, with the principal."""
    screened = customer.screening_list_version
    against = "no list" if screened is None else f"list {screened}"
    threshold = customer.screening_threshold
    if threshold is not None and screened is not None:
        against += f" at threshold {threshold:g}"
    return (
        "sanctions screening status is potential_match: awaiting rescreen against the "
        f"list in force ({in_force.version} at threshold {in_force.threshold:g}); "
        f"the record's clear was screened against {against}"
    )


def screening_summary(
    customer: Customer, in_force: ListInForce | None = None
) -> dict[str, Any] | None:
    """``{list_version, screened_at, hit_count, hits}`` of a customer not
    ``clear`` (and ``awaiting_rescreen``: the list in force and the one the
    record was screened against, for one held only for that); None for a
    ``clear`` one screened against the list in force."""
    awaiting = awaiting_rescreen(customer, in_force)
    if customer.sanctions_status == "clear" and not awaiting:
        return None
    hits: list[dict[str, Any]] = [
        {
            "screened_name": h.get("screened_name"),
            "listed_name": h.get("listed_name"),
            "score": h.get("score"),
            "source": h.get("source"),
            "reviewed": bool(h.get("reviewed")),
        }
        for h in customer.screening_hits or ()
    ]
    if customer.screening_hits is None and customer.screening_best_match is not None:
        # Screened before each hit was kept: the best match is all there is,
        # and which of the customer's names it matched is not known.
        best, score = customer.screening_best_match, customer.screening_score
        hits.append({"screened_name": None, "listed_name": best, "score": score,
                     "source": None, "reviewed": False})  # fmt: skip
    # The leads holding the customer first (no review cleared them), strongest first.
    hits.sort(key=lambda h: (h["reviewed"], -(h["score"] or 0.0)))
    screened_at = customer.screened_at
    summary: dict[str, Any] = {
        "list_version": customer.screening_list_version,
        "screened_at": None if screened_at is None else rfc3339(screened_at),
        "hit_count": len(hits),
        "hits": hits[:MAX_HITS],
    }
    if awaiting and in_force is not None:
        summary["awaiting_rescreen"] = {
            "list_version": in_force.version, "threshold": in_force.threshold,
            "screened_list_version": customer.screening_list_version,
            "screened_threshold": customer.screening_threshold,
        }  # fmt: skip
    return summary
