"""Run in its own process by ``test_scale``: export the whole log to JSONL, verify
the export offline and the database, and print the figures as one JSON line.

Its own process, so the peak RSS it reports (``ru_maxrss`` of itself) is what an
export costs, not whatever else the test runner has loaded.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

from gateway.audit.export import Exporter
from gateway.audit.offline import verify_export
from gateway.audit.query import DecisionFilters
from gateway.audit.signing import load_public_key
from gateway.audit.verify import verify_log
from gateway.db.session import create_engine, session_factory
from gateway.settings import Settings


async def main(db: Path, out: Path, public_key: str) -> dict[str, object]:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}",
                        upstream_url="http://127.0.0.1:9")
    engine = create_engine(settings)
    trusted = [load_public_key(public_key)]
    figures: dict[str, object] = {}
    try:
        tracemalloc.start()
        t0 = time.perf_counter()
        exporter = Exporter(session_factory(engine), DecisionFilters(), "jsonl")
        figures["planned"] = await exporter.plan()
        with out.open("wb") as fh:
            async for line in exporter.lines():
                fh.write(line)
        figures["export_s"] = time.perf_counter() - t0
        figures["export_py_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        figures["export_rss_mb"] = _peak_rss_mb()
        t0 = time.perf_counter()
        report = verify_export(out, trusted_keys=trusted)
        figures["offline_verify_s"] = time.perf_counter() - t0
        figures["offline"] = [report.ok, report.records, report.proven]
        t0 = time.perf_counter()
        db_report = await verify_log(engine, trusted_keys=trusted)
        figures["db_verify_s"] = time.perf_counter() - t0
        figures["db"] = [db_report.ok, db_report.nodes[0].records if db_report.nodes else 0]
    finally:
        await engine.dispose()
    figures["peak_rss_mb"] = _peak_rss_mb()
    return figures


def _peak_rss_mb() -> float:
    """This process's resident high-water mark (VmHWM).

    Not ``ru_maxrss``: Linux keeps that across ``execve``, so a child forked
    from a large pytest process would report its parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
    print(json.dumps(result))
