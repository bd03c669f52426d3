"""Exports and verification stream in bounded memory.

The export and both verifications run in a process of their own
(``tests/audit/export_child.py``), which reports its own peak RSS: the test
runner's RSS says nothing about the export (in a full run it has every
package of the suite loaded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.query import DecisionFilters, list_decisions
from gateway.audit.signing import Signer
from tests.audit.generate import generate_log

ROOT = Path(__file__).resolve().parents[2]
RSS_LIMIT_MB = 200


async def _run(sessions: async_sessionmaker[AsyncSession], db: Path, signer: Signer,
               tmp_path: Path, n: int, py_peak_limit_mb: float) -> None:
    t0 = time.perf_counter()
    generate_log(db, n, signer)
    print(f"\ngenerated {n} records in {time.perf_counter() - t0:.1f}s, "
          f"db {db.stat().st_size / 1e6:.0f} MB")
    out = tmp_path / "all.jsonl"
    child = subprocess.run(
        [sys.executable, "-m", "tests.audit.export_child", str(db), str(out), signer.public_b64],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=3600, check=False,
    )
    assert child.returncode == 0, child.stderr
    fig = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"export (own process): {fig['export_s']:.1f}s, {out.stat().st_size / 1e6:.0f} MB "
          f"file, python peak {fig['export_py_peak_mb']:.1f} MB, "
          f"peak RSS {fig['export_rss_mb']:.0f} MB; offline verify {fig['offline_verify_s']:.1f}s;"
          f" db verify {fig['db_verify_s']:.1f}s; peak RSS overall {fig['peak_rss_mb']:.0f} MB")
    assert fig["planned"] == n
    assert fig["offline"] == [True, n, n]
    assert fig["db"] == [True, n]
    t0 = time.perf_counter()
    items, cursor = await list_decisions(sessions, DecisionFilters(customer_id="cust-3",
                                                                   rule_id="tier-entitlement"),
                                         None, 100)
    print(f"filtered page (customer + rule): {(time.perf_counter() - t0) * 1000:.1f} ms")
    assert len(items) == 100 and cursor is not None
    assert fig["export_py_peak_mb"] < py_peak_limit_mb
    assert fig["peak_rss_mb"] < RSS_LIMIT_MB


async def test_export_20k_bounded_memory(
    sessions: async_sessionmaker[AsyncSession], db_path: Path, signer: Signer, tmp_path: Path,
) -> None:
    await _run(sessions, db_path, signer, tmp_path, 20_000, 30)


@pytest.mark.slow
async def test_export_100k_bounded_memory(
    sessions: async_sessionmaker[AsyncSession], db_path: Path, signer: Signer, tmp_path: Path,
) -> None:
    await _run(sessions, db_path, signer, tmp_path, 100_000, 30)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_export_1m_bounded_memory(
    sessions: async_sessionmaker[AsyncSession], db_path: Path, signer: Signer, tmp_path: Path,
) -> None:
    await _run(sessions, db_path, signer, tmp_path, 1_000_000, 30)
