"""Micro-benchmark of the audit writer alone: ``python -m bench.audit_writer``.

N coroutines each loop like a request does: ``await writer.record(decision)``
(the request waits for COMMIT), then ``writer.record_outcome(outcome)`` (not
awaited). Against a real SQLite file (schema from metadata, WAL), on uvloop.

Reports per request: CPU of the event-loop thread (``time.thread_time``, what
competes with request handling), CPU of the whole process (loop + SQLite
thread, ``time.process_time``), record() latency p50/p99, and commits per
request. The driver's own cost (building the records) is measured with a
no-op sink and subtracted from the CPU figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from gateway.audit.ids import new_id
from gateway.audit.record import DecisionRecord, OutcomeRecord
from gateway.audit.signing import load_signer
from gateway.audit.writer import AuditWriter
from gateway.db.base import Base
from gateway.db.session import create_engine
from gateway.settings import Settings


def _decision(i: int) -> DecisionRecord:
    return DecisionRecord(
        id=new_id(), ts=datetime.now(UTC), decision="allow", status=200,
        endpoint="/v1/chat/completions", customer_id=f"cust-{i % 7}", key_id="key-1",
        effective_tier="enterprise", kyc_level="kyb_verified", citizenships=["US"],
        residence="US", origin_country="US", client_ip="8.8.8.8", model="haiku-lite",
        capabilities=["general"], rule_ids=["tier-entitlement"], policy_version="v" * 64,
        quota={"bucket": "default", "remaining": 10}, prompt_sha256="ab" * 32,
        facts={"principal": {"tier": "enterprise"}, "body": {"model": "haiku-lite"}},
    )


def _outcome(decision_id: str) -> OutcomeRecord:
    return OutcomeRecord(new_id(), datetime.now(UTC), decision_id, 200, tokens_in=12,
                         tokens_out=30, latency_ms=1.5, bytes_out=273)


class _NullSink:
    async def record(self, record: DecisionRecord) -> None:
        await asyncio.sleep(0)

    async def record_outcome(self, outcome: OutcomeRecord) -> None:
        return None


async def _drive(sink: Any, conns: int, duration: float) -> dict[str, float]:
    lat: list[float] = []
    deadline = time.perf_counter() + duration

    async def one(c: int) -> None:
        i = c
        while time.perf_counter() < deadline:
            rec = _decision(i)
            t0 = time.perf_counter()
            await sink.record(rec)
            lat.append(time.perf_counter() - t0)
            await sink.record_outcome(_outcome(rec.id))
            i += conns

    t_cpu, p_cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(conns)))
    n = len(lat)
    lat.sort()
    return {
        "n": n,
        "rps": n / (time.perf_counter() - wall),
        "loop_us": (time.thread_time() - t_cpu) / n * 1e6,
        "proc_us": (time.process_time() - p_cpu) / n * 1e6,
        "p50_ms": lat[n // 2] * 1000,
        "p99_ms": lat[int(n * 0.99)] * 1000,
    }


async def _run(args: argparse.Namespace) -> None:
    base = await _drive(_NullSink(), 1, 1.0)
    print(f"driver overhead: loop {base['loop_us']:.1f} us/req")
    for sync in args.sync.split(","):
        for conns in (int(c) for c in args.connections.split(",")):
            runs = []
            for _ in range(args.rounds):
                with tempfile.TemporaryDirectory() as tmp:
                    db = Path(tmp) / "audit.db"
                    settings = Settings(
                        database_url=f"sqlite+aiosqlite:///{db}", upstream_url="http://127.0.0.1:9",
                        node_id="bench", sqlite_synchronous=sync,
                        **({"audit_batch_wait_ms": args.wait_ms} if args.wait_ms is not None
                           else {}),
                    )
                    engine = create_engine(settings)
                    async with engine.begin() as conn:
                        await conn.run_sync(Base.metadata.create_all)
                    writer = AuditWriter(engine, settings, load_signer(settings))
                    await writer.start()
                    await _drive(writer, conns, 0.3)  # warm up
                    batches0 = writer.stats.batches
                    r = await _drive(writer, conns, args.duration)
                    r["commits_per_req"] = (writer.stats.batches - batches0) / r["n"]
                    await writer.stop()
                    await engine.dispose()
                    runs.append(r)
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"sync={sync:6} conns={conns:3}  {med['rps']:7.0f} req/s  "
                  f"loop CPU {med['loop_us'] - base['loop_us']:6.1f} us/req  "
                  f"process CPU {med['proc_us'] - base['loop_us']:6.1f} us/req  "
                  f"p50 {med['p50_ms']:.3f} ms  p99 {med['p99_ms']:.3f} ms  "
                  f"commits/req {med['commits_per_req']:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--sync", default="FULL,NORMAL")
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--wait-ms", type=float, default=None)
    args = parser.parse_args()
    uvloop.run(_run(args))


if __name__ == "__main__":
    main()
