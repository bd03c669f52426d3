"""Exports and verification stream in bounded memory (peak RSS / tracemalloc printed)."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import psutil
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.audit.export import Exporter
from gateway.audit.offline import verify_export
from gateway.audit.query import DecisionFilters, list_decisions
from gateway.audit.signing import Signer
from gateway.audit.verify import verify_log
from tests.audit.generate import generate_log


async def _run(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: Path,
               signer: Signer, tmp_path: Path, n: int, py_peak_limit_mb: float) -> None:
    t0 = time.perf_counter()
    generate_log(db, n, signer)
    print(f"\ngenerated {n} records in {time.perf_counter() - t0:.1f}s, "
          f"db {db.stat().st_size / 1e6:.0f} MB")
    proc = psutil.Process(os.getpid())
    out = tmp_path / "all.jsonl"
    tracemalloc.start()
    t0 = time.perf_counter()
    exporter = Exporter(sessions, DecisionFilters(), "jsonl")
    assert await exporter.plan() == n
    with out.open("wb") as fh:
        async for line in exporter.lines():
            fh.write(line)
    _, export_peak = tracemalloc.get_traced_memory()
    print(f"export: {time.perf_counter() - t0:.1f}s, {out.stat().st_size / 1e6:.0f} MB file, "
          f"python peak {export_peak / 1e6:.1f} MB, RSS {proc.memory_info().rss / 1e6:.0f} MB")
    tracemalloc.stop()
    rss_before = proc.memory_info().rss
    t0 = time.perf_counter()
    report = verify_export(out, trusted_keys=[signer.public_raw])
    print(f"offline verify: {time.perf_counter() - t0:.1f}s")
    assert report.ok and report.records == n and report.proven == n
    t0 = time.perf_counter()
    db_report = await verify_log(engine, trusted_keys=[signer.public_raw])
    rss = proc.memory_info().rss / 1e6
    print(f"db verify: {time.perf_counter() - t0:.1f}s, RSS {rss:.0f} MB "
          f"(grew {(proc.memory_info().rss - rss_before) / 1e6:.0f} MB during both verifies)")
    assert db_report.ok and db_report.nodes[0].records == n
    t0 = time.perf_counter()
    items, cursor = await list_decisions(sessions, DecisionFilters(customer_id="cust-3",
                                                                   rule_id="tier-entitlement"),
                                         None, 100)
    print(f"filtered page (customer + rule): {(time.perf_counter() - t0) * 1000:.1f} ms")
    assert len(items) == 100 and cursor is not None
    assert export_peak < py_peak_limit_mb * 1e6
    assert rss < 200


async def test_export_20k_bounded_memory(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db_path: Path,
    signer: Signer, tmp_path: Path,
) -> None:
    await _run(engine, sessions, db_path, signer, tmp_path, 20_000, 30)


@pytest.mark.slow
async def test_export_100k_bounded_memory(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db_path: Path,
    signer: Signer, tmp_path: Path,
) -> None:
    await _run(engine, sessions, db_path, signer, tmp_path, 100_000, 30)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_export_1m_bounded_memory(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db_path: Path,
    signer: Signer, tmp_path: Path,
) -> None:
    await _run(engine, sessions, db_path, signer, tmp_path, 1_000_000, 30)
