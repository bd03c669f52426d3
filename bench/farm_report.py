"""Time the account-farm report on a large generated log: ``python -m bench.farm_report``.

Generates ``--records`` decisions over 7 days (and an outcome record for each
allowed one, as the gateway writes them) from ``--customers`` innocent
customers plus one planted farm, loads them with SQLAlchemy Core into a fresh
SQLite file (or a throw-away PostgreSQL server with ``--postgres``), then
times the whole report, its one scan of the window and its member-figure
queries. The bodies are the real canonical record bodies and the hash chain
is real; checkpoints and the rule-id index are not written (the report reads
neither).

The population, seeded (``--seed``):
- innocents: one home address each (2 % IPv6), 10 % a second (mobile) one,
  5 % behind shared NATs of 2-6 customers; 30 % coding and 10 % agentic
  requests; 2 % 429s, 1 % 403s; 2 % of requests are one health-check prompt
  sent by everyone, 1 % come from 50 prompt templates many customers send;
- the farm: 30 accounts rotating through 8 proxy addresses, 10 % of all
  requests, 70 % coding / 30 % agentic, 30 % 429s, and a refused prompt is
  retried on another account (identical prompt, another customer).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import ipaddress
import random
import resource
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import farm_sql as q
from gateway.audit.chain import GENESIS, canonical, chain_hash, index_columns
from gateway.audit.farms import FarmOptions, farm_report
from gateway.audit.ids import new_id
from gateway.audit.tables import audit_records
from gateway.db.base import Base
from gateway.db.session import create_engine
from gateway.settings import Settings

START = datetime(2026, 3, 1, tzinfo=UTC)
SPAN = timedelta(days=7)


def _address(rng: random.Random, v6: bool) -> str:
    if v6:
        return str(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(96)))
    return str(ipaddress.IPv4Address(rng.randrange(1 << 24, 224 << 24)))


def _population(rng: random.Random, customers: int) -> list[list[str]]:
    homes = [[_address(rng, rng.random() < 0.02)] for _ in range(customers)]
    for addresses in homes:
        if rng.random() < 0.10:
            addresses.append(_address(rng, False))
    i = 0
    while i < customers:  # NATs: runs of 2-6 customers sharing their home address
        if rng.random() < 0.05 / 4:
            size = rng.randrange(2, 7)
            for j in range(i, min(i + size, customers)):
                homes[j][0] = homes[i][0]
            i += size
        i += 1
    return homes


def _records(n: int, customers: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    homes = _population(rng, customers)
    proxies = [_address(rng, False) for _ in range(8)]
    health = hashlib.sha256(b"ping").hexdigest()
    templates = [hashlib.sha256(f"template {i}".encode()).hexdigest() for i in range(50)]
    step = SPAN / n
    retry: str | None = None
    out: list[dict[str, Any]] = []
    for k in range(n):
        ts = START + step * k
        farm = rng.random() < 0.10
        if farm:
            account = rng.randrange(30)
            customer, key, ip = f"farm-{account}", f"kf-{account}", rng.choice(proxies)
            caps = ["coding"] if rng.random() < 0.7 else ["agentic"]
            status = 429 if rng.random() < 0.3 else 200
            prompt = retry or hashlib.sha256(f"farm {k}".encode()).hexdigest()
            retry = prompt if status == 429 else None
        else:
            c = rng.randrange(customers)
            customer, key, ip = f"c{c}", f"k{c}-{rng.randrange(3 if c % 7 == 0 else 1)}", \
                rng.choice(homes[c])
            roll = rng.random()
            caps = ["coding"] if roll < 0.3 else ["agentic"] if roll < 0.4 else []
            roll = rng.random()
            status = 429 if roll < 0.02 else 403 if roll < 0.03 else 200
            roll = rng.random()
            prompt = (health if roll < 0.02 else rng.choice(templates) if roll < 0.03
                      else hashlib.sha256(f"p {k}".encode()).hexdigest())
        out.append(_decision(ts, customer, key, ip, caps, status, prompt))
    return out


def _decision(ts: datetime, customer: str, key: str, ip: str, caps: list[str], status: int,
              prompt: str) -> dict[str, Any]:
    return {
        "id": new_id(int(ts.timestamp() * 1000)), "ts": ts, "kind": "decision", "version": 1,
        "decision": "allow" if status == 200 else "deny", "status": status,
        "endpoint": "/v1/chat/completions", "customer_id": customer, "key_id": key,
        "effective_tier": "enterprise", "kyc_level": "kyb_verified", "citizenships": ["DE"],
        "residence": "DE", "origin_country": "DE", "origin_region": None, "client_ip": ip,
        "model": "fable-5" if caps else "haiku-lite", "capabilities": caps,
        "rule_ids": ["tier-entitlement"] if status == 200 else [], "reasons": [],
        "policy_version": "v" * 64, "quota": {"bucket": "default", "remaining": 10},
        "prompt_sha256": prompt,
        "facts": {"principal": {"tier": "enterprise"}, "body": {"model": "fable-5"}},
    }


def _outcome(decision: dict[str, Any]) -> dict[str, Any]:
    return {"id": new_id(int(decision["ts"].timestamp() * 1000)),
            "ts": decision["ts"] + timedelta(milliseconds=400), "kind": "outcome",
            "version": 1, "decision_id": decision["id"], "upstream_status": 200,
            "tokens_in": 700, "tokens_out": 300, "latency_ms": 400.0, "bytes_out": 2000,
            "error": None}


async def _load(engine: AsyncEngine, decisions: list[dict[str, Any]]) -> int:
    prev, seq, batch, total = GENESIS, 0, [], 0
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    for decision in decisions:
        for fields in (decision, _outcome(decision)) if decision["status"] == 200 else (decision,):
            seq += 1
            fields = {**fields, "node_id": "bench", "seq": seq}
            body = canonical(fields)
            digest = chain_hash(prev, body)
            batch.append({**index_columns(fields), "node_id": "bench", "seq": seq,
                          "body": body.decode(), "prev_hash": prev, "hash": digest})
            prev = digest
        if len(batch) >= 5000:
            async with engine.begin() as conn:
                await conn.execute(insert(audit_records), batch)
            total += len(batch)
            batch = []
    if batch:
        async with engine.begin() as conn:
            await conn.execute(insert(audit_records), batch)
        total += len(batch)
    return total


async def _time(label: str, work: Any, rounds: int) -> Any:
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - t0)
    print(f"  {label:28} median {statistics.median(times):6.2f} s  "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)})", flush=True)
    return result


async def _figures(engine: AsyncEngine, window: q.Window, members: list[str]) -> int:
    n = 0
    async with engine.connect() as conn:
        for query in (q.member_figures_query(window, members, ("coding", "agentic")),
                      q.member_models_query(window, members),
                      q.member_tokens_query(window, members)):
            n += len(await q.rows(conn, query))
    return n


async def _run(args: argparse.Namespace, url: str) -> None:
    settings = Settings(database_url=url, upstream_url="http://127.0.0.1:9")
    engine = create_engine(settings)
    t0 = time.perf_counter()
    decisions = _records(args.records, args.customers, args.seed)
    rows = await _load(engine, decisions)
    print(f"{engine.dialect.name}: {args.records} decisions, {rows} records loaded in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    options = FarmOptions(START, START + SPAN)
    window = q.Window(START, START + SPAN)

    async def one(query: Any) -> int:
        async with engine.connect() as conn:
            return len(await q.rows(conn, query))

    await one(q.links_query(window, 10))  # warm the cache: time reads, not first I/O
    scanned = await _time("links scan (one pass)", lambda: one(
        q.links_query(window, 10)), args.rounds)
    members = sorted({m for c in (await farm_report(engine, options))["clusters"]
                      for m in c["customers"]})
    await _time(f"figures of {len(members)} members", lambda: _figures(
        engine, window, members), args.rounds)
    doc = await _time("whole report", lambda: farm_report(engine, options), args.rounds)
    del decisions
    tracemalloc.start()
    await farm_report(engine, options)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"  {scanned} address-pair and shared-prompt rows; "
          f"{len(doc['clusters'])} clusters, {doc['weak_clusters']} weak (hidden); "
          f"Python allocations during one report: peak {peak / 1e6:.1f} MB (bench process "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
          f"the generated records included)")
    for c in doc["clusters"][:5]:
        print(f"  #{c['rank']} score {c['score']} accounts {c['accounts']} requests "
              f"{c['requests']} watched {c['watched_share']:.0%} 429 {c['rate_limited']} "
              f"links {c['links']['addresses']}/{c['links']['networks']}/"
              f"{c['links']['prompts']} {c['customers'][:4]}")
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", action="store_true",
                        help="a throw-away PostgreSQL server (tests.support.postgres_server)")
    args = parser.parse_args()
    if args.postgres:
        from tests.support.postgres_server import PostgresServer

        server = PostgresServer()
        server.start()
        try:
            asyncio.run(_run(args, server.create_database()))
        finally:
            server.close()
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(args, f"sqlite+aiosqlite:///{Path(tmp) / 'farm.db'}"))


if __name__ == "__main__":
    main()
