"""The account-farm report on a real SQLite log written by the real audit writer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.farm_links import Thresholds
from gateway.audit.farms import FarmOptions, farm_report
from gateway.audit.tables import audit_records
from gateway.audit.writer import AuditWriter
from tests.audit.farm_scenario import (
    FARM_A_EXPECTED,
    FARM_B_EXPECTED,
    FROM,
    HEALTH,
    NAT_EXPECTED,
    TO,
    write_scenario,
)


@pytest.fixture
async def scenario(writer: AuditWriter, engine: AsyncEngine) -> AsyncEngine:
    await write_scenario(writer)
    await writer.stop()  # flushes the outcome records
    return engine


async def _report(engine: AsyncEngine, **options: Any) -> dict[str, Any]:
    return await farm_report(engine, FarmOptions(FROM, TO, **options))


async def test_finds_both_farms_with_exact_figures(scenario: AsyncEngine) -> None:
    doc = await _report(scenario)
    assert doc["clusters"] == [FARM_B_EXPECTED, FARM_A_EXPECTED]
    assert doc["scanned"] == {"customers": 14, "requests": 85, "links": 6}
    assert doc["from"] == "2026-03-01T00:00:00Z" and doc["to"] == "2026-03-02T00:00:00Z"
    assert doc["version"] == 1


async def test_a_lone_shared_address_is_weak_and_held_back(scenario: AsyncEngine) -> None:
    """Three customers behind one NAT address, nothing else in common: counted as a
    weak cluster, not listed unless asked for; then listed, marked weak, ranked last."""
    doc = await _report(scenario)
    assert doc["weak_clusters"] == 1 and doc["weak_clusters_hidden"] == 1
    assert all(not c["weak"] for c in doc["clusters"])
    shown = await _report(scenario, include_weak=True)
    assert shown["weak_clusters_hidden"] == 0
    assert shown["clusters"] == [FARM_B_EXPECTED, FARM_A_EXPECTED, NAT_EXPECTED]


async def test_common_prompts_link_nobody(scenario: AsyncEngine) -> None:
    """The health check every customer sends is ignored above max_prompt_customers
    (14 senders > 10); at 14, with one shared prompt enough, it joins everyone."""
    doc = await _report(scenario)
    assert doc["ignored"]["common_prompts"] == 1
    merged = await _report(scenario, thresholds=Thresholds(max_prompt_customers=14,
                                                           min_shared_prompts=1))
    assert [c["accounts"] for c in merged["clusters"]] == [14]
    assert merged["clusters"][0]["links"]["prompt_list"][0] == {"key": HEALTH, "customers": 14}


async def test_one_identical_prompt_is_a_coincidence(scenario: AsyncEngine) -> None:
    """big-corp and solo both sent "hello" once: below min_shared_prompts (2), no link.
    Farm B's pairs share two prompts each; with three required it falls apart."""
    doc = await _report(scenario, min_accounts=2)
    assert [c["customers"] for c in doc["clusters"]] == [FARM_B_EXPECTED["customers"],
                                                         FARM_A_EXPECTED["customers"]]
    assert doc["ignored"]["prompt_pairs_below_min"] == 1
    one = await _report(scenario, min_accounts=2, thresholds=Thresholds(min_shared_prompts=1))
    assert ["big-corp", "solo"] in [c["customers"] for c in one["clusters"]]
    three = await _report(scenario, thresholds=Thresholds(min_shared_prompts=3))
    assert [c["customers"] for c in three["clusters"]] == [FARM_A_EXPECTED["customers"]]
    assert three["ignored"]["prompt_pairs_below_min"] == 4


async def test_one_customer_with_many_keys_is_not_a_farm(scenario: AsyncEngine) -> None:
    doc = await _report(scenario, include_weak=True)
    assert all("big-corp" not in c["customers"] for c in doc["clusters"])
    assert all("solo" not in c["customers"] for c in doc["clusters"])


async def test_min_accounts(scenario: AsyncEngine) -> None:
    doc = await _report(scenario, min_accounts=5)
    assert [c["customers"] for c in doc["clusters"]] == [FARM_A_EXPECTED["customers"]]
    with pytest.raises(ValueError, match="min_accounts"):
        FarmOptions(FROM, TO, min_accounts=1)
    with pytest.raises(ValueError, match="after"):
        FarmOptions(TO, FROM)


async def test_the_window_bounds_every_link_and_figure(scenario: AsyncEngine) -> None:
    """farm-a-1's request from the NAT address two days earlier joins farm A to the
    NAT only when the window includes it."""
    doc = await _report(scenario)
    assert FARM_A_EXPECTED["customers"] == doc["clusters"][1]["customers"]
    wide = await farm_report(scenario, FarmOptions(FROM - timedelta(days=3), TO))
    joined = next(c for c in wide["clusters"] if "farm-a-1" in c["customers"])
    assert joined["accounts"] == 8 and "nat-1" in joined["customers"]
    assert joined["first_seen"] == "2026-02-27T12:00:00Z"
    empty = await farm_report(scenario, FarmOptions(TO, TO + timedelta(days=1)))
    assert empty["clusters"] == [] and empty["scanned"]["customers"] == 0


async def test_watched_capabilities_are_a_parameter(scenario: AsyncEngine) -> None:
    doc = await _report(scenario, capabilities=("agentic",))
    farm_a = next(c for c in doc["clusters"] if c["customers"][0] == "farm-a-1")
    assert farm_a["capabilities"] == {"agentic": 0} and farm_a["watched_requests"] == 0
    assert farm_a["score"] == 0.216  # 0.51 * log10(26) * 0.25 * 1.2
    with pytest.raises(ValueError, match="capability"):
        FarmOptions(FROM, TO, capabilities=('co"ding',))


async def test_the_report_writes_nothing(scenario: AsyncEngine) -> None:
    async with scenario.connect() as conn:
        before = (await conn.execute(select(func.count()).select_from(audit_records))).scalar()
    await _report(scenario, include_weak=True)
    async with scenario.connect() as conn:
        after = (await conn.execute(select(func.count()).select_from(audit_records))).scalar()
    assert before == after
