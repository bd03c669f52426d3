"""The screening summary a held customer's refusals record: bounded, the
leads no review cleared first, and nothing for a clear customer."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.identity.screening_summary import MAX_HITS, screening_summary
from gateway.kyc.tables import Customer


def _customer(status: str, hits: list[dict[str, object]] | None, **kw: object) -> Customer:
    return Customer(id="c1", name="Merlion Trading Pte", kind="organization",
                    sanctions_status=status, screening_hits=hits,
                    screening_list_version="abc-20261128",
                    screened_at=datetime(2026, 11, 28, 8, 0, tzinfo=UTC), **kw)  # fmt: skip


def _hit(n: int, score: float, reviewed: bool) -> dict[str, object]:
    return {"screened_name": f"Owner {n}", "listed_name": f"Listed {n}", "score": score,
            "source": "SYN", "reviewed": reviewed}  # fmt: skip


def test_at_most_five_hits_unreviewed_strongest_first() -> None:
    hits = [_hit(1, 0.99, True), _hit(2, 0.91, False), _hit(3, 0.95, False),
            _hit(4, 0.92, True), _hit(5, 0.93, False), _hit(6, 0.90, False),
            _hit(7, 0.97, True)]  # fmt: skip
    summary = screening_summary(_customer("potential_match", hits))
    assert summary is not None
    assert summary["hit_count"] == 7 and len(summary["hits"]) == MAX_HITS == 5
    assert [h["screened_name"] for h in summary["hits"]] == [
        "Owner 3", "Owner 5", "Owner 2", "Owner 6", "Owner 1"]  # fmt: skip
    assert summary["screened_at"] == "2026-11-28T08:00:00Z"
    assert summary["list_version"] == "abc-20261128"


def test_a_clear_customer_carries_nothing() -> None:
    assert screening_summary(_customer("clear", [_hit(1, 0.99, True)])) is None


def test_a_record_screened_before_hits_were_kept_names_its_best_match() -> None:
    c = _customer("confirmed_match", None, screening_best_match="Zoltrava Shipping",
                  screening_score=0.97)  # fmt: skip
    summary = screening_summary(c)
    assert summary is not None and summary["hits"] == [{
        "screened_name": None, "listed_name": "Zoltrava Shipping", "score": 0.97,
        "source": None, "reviewed": False}]  # fmt: skip
