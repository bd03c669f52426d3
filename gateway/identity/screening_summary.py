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
"""

from __future__ import annotations

from typing import Any

from gateway.kyc.schemas import rfc3339
from gateway.kyc.tables import Customer

FACTS_KEY = "screening"
MAX_HITS = 5


def screening_summary(customer: Customer) -> dict[str, Any] | None:
    """``{list_version, screened_at, hit_count, hits}`` of a customer not
    ``clear``; None for a ``clear`` one."""
    if customer.sanctions_status == "clear":
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
    return {
        "list_version": customer.screening_list_version,
        "screened_at": None if screened_at is None else rfc3339(screened_at),
        "hit_count": len(hits),
        "hits": hits[:MAX_HITS],
    }
