"""An audit log with two account farms, a NAT, a big customer and loners, written
through the real ``AuditWriter`` (SQLite or PostgreSQL), for the farm report's tests.

- farm A: 5 customers, one key each, rotating between 2 addresses
  (198.51.100.10, 203.0.113.20), coding requests, one 429 each;
- farm B: 4 customers, each on an address of its own (three IPv6 /48s, one
  IPv4 /24), agentic requests, chained by two identical prompts per pair
  (b1-b2: P1 Q1, b2-b3: P2 Q2, b3-b4: P3 Q3), one 403 (its prompt still counts);
- a NAT: 3 unrelated customers behind 192.0.2.50, chat only (no capability),
  each also sends an empty prompt; plus a 401 (no customer) from that address;
- big-corp: one customer, 8 keys, 4 addresses, one prompt repeated 24 times;
- solo: one customer alone, but it and big-corp each sent "hello" once: one
  identical prompt, below ``min_shared_prompts`` (2), links nobody;
- every customer above sends the same health-check prompt once (14 > the
  default ``max_prompt_customers`` of 10: a common hash, not a link);
- farm-a-1 also made one request from the NAT address two days before the
  window: outside it, so it must not join farm A to the NAT.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.audit.ids import new_id
from gateway.audit.record import OutcomeRecord
from gateway.audit.writer import AuditWriter
from tests.audit.conftest import make_record

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FROM = datetime(2026, 3, 1, tzinfo=UTC)
TO = datetime(2026, 3, 2, tzinfo=UTC)
FARM_A = [f"farm-a-{i}" for i in range(1, 6)]
FARM_B = [f"farm-b-{i}" for i in range(1, 5)]
NAT = [f"nat-{i}" for i in range(1, 4)]
A_IPS = ("198.51.100.10", "203.0.113.20")
B_IPS = ("2001:db8:1::b1", "2001:db8:2::b2", "2001:db8:3::b3", "198.18.4.4")
NAT_IP = "192.0.2.50"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


HEALTH = sha("ping")
EMPTY = sha("")


class _Log:
    def __init__(self, writer: AuditWriter, base: datetime) -> None:
        self.writer = writer
        self.ts = base

    async def request(self, customer: str | None, key: str | None, ip: str, prompt: str,
                      caps: list[str], *, status: int = 200, model: str = "fable-5",
                      tokens: tuple[int, int] = (0, 0), at: datetime | None = None) -> None:
        self.ts += timedelta(seconds=1)
        when = at or self.ts
        rec = make_record(customer_id=customer, key_id=key, client_ip=ip, prompt_sha256=prompt,
                          capabilities=caps, status=status, model=model, ts=when,
                          id=new_id(int(when.timestamp() * 1000)),
                          decision="allow" if status == 200 else "deny",
                          rule_ids=["tier-entitlement"] if status == 200 else [])
        await self.writer.record(rec)
        if status == 200:
            await self.writer.record_outcome(OutcomeRecord(
                id=new_id(), ts=when + timedelta(milliseconds=300), decision_id=rec.id,
                upstream_status=200, tokens_in=tokens[0], tokens_out=tokens[1], latency_ms=300.0))


async def write_scenario(writer: AuditWriter, base: datetime = T0) -> None:
    """Write the log; ``base`` moves every in-window record (the CLI's ``--since`` test)."""
    log = _Log(writer, base)
    await log.request("farm-a-1", "key-a-1", NAT_IP, sha("old"), ["coding"],
                      at=base - timedelta(days=2), tokens=(9, 9))
    for i, customer in enumerate(FARM_A, 1):
        for j in range(4):
            await log.request(customer, f"key-a-{i}", A_IPS[j % 2], sha(f"a{i}-{j}"), ["coding"],
                              status=429 if j == 3 else 200,
                              model="fable-5" if j < 2 else "haiku-lite", tokens=(100, 50))
        await log.request(customer, f"key-a-{i}", A_IPS[0], HEALTH, [], model="haiku-lite",
                          tokens=(5, 1))
    chained = {1: ["P1", "Q1"], 2: ["P1", "Q1", "P2", "Q2"], 3: ["P2", "Q2", "P3", "Q3"],
               4: ["P3", "Q3"]}
    for i, customer in enumerate(FARM_B, 1):
        prompts = chained[i] + [f"b{i}-{j}" for j in range(4 - len(chained[i]))]
        for j, text in enumerate(prompts):
            denied = i == 2 and j == 3
            await log.request(customer, f"key-b-{i}", B_IPS[i - 1], sha(text), ["agentic"],
                              status=403 if denied else 200,
                              model="mythos-5" if denied else "fable-5", tokens=(200, 80))
        await log.request(customer, f"key-b-{i}", B_IPS[i - 1], HEALTH, [], model="haiku-lite",
                          tokens=(5, 1))
    for i, customer in enumerate(NAT, 1):
        for j in range(2):
            await log.request(customer, f"key-n-{i}", NAT_IP, sha(f"n{i}-{j}"), [],
                              model="haiku-lite", tokens=(30, 30))
        await log.request(customer, f"key-n-{i}", NAT_IP, EMPTY, [], model="haiku-lite")
        await log.request(customer, f"key-n-{i}", NAT_IP, HEALTH, [], model="haiku-lite")
    await log.request(None, None, NAT_IP, EMPTY, [], status=401, model="haiku-lite")
    for j in range(24):
        await log.request("big-corp", f"key-big-{j % 8}", f"198.18.10.{1 + j % 4}",
                          sha("nightly batch"), ["coding"], tokens=(1000, 10))
    await log.request("big-corp", "key-big-0", "198.18.10.1", HEALTH, [], model="haiku-lite")
    await log.request("solo", "key-solo", "198.51.200.1", HEALTH, [], model="haiku-lite")
    await log.request("solo", "key-solo", "198.51.200.1", sha("hello"), [], model="haiku-lite")
    await log.request("big-corp", "key-big-1", "198.18.10.2", sha("hello"), [],
                      model="haiku-lite")


def at(seconds: int, base: datetime = T0) -> str:
    return (base + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _members(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    keys = ("customer_id", "requests", "keys", "watched_requests", "denied", "rate_limited",
            "shared_addresses", "shared_networks", "shared_prompts")
    return [dict(zip(keys, row, strict=True)) for row in rows]


# Seconds after T0 of each customer's first and last in-window record (the
# old request is the 1st tick; farm A's 25 records are ticks 2-26, farm B's
# 20 are 27-46, the NAT's 12 are 47-58, the 401 is 59).
FARM_B_EXPECTED: dict[str, Any] = {
    "rank": 1, "score": 1.106, "weak": False, "accounts": 4, "customers": FARM_B, "keys": 4,
    "requests": 20, "watched_requests": 16, "watched_share": 0.8,
    "capabilities": {"coding": 0, "agentic": 16, "traces": 0},
    "tokens_in": 4 * 805 - 200, "tokens_out": 4 * 321 - 80, "denied": 1, "rate_limited": 0,
    "first_seen": at(27), "last_seen": at(46),
    "models": {"fable-5": 15, "haiku-lite": 4, "mythos-5": 1},
    "links": {"addresses": 0, "address_list": [], "networks": 0, "network_list": [],
              "prompts": 6, "prompt_list": sorted(
                  ({"key": sha(p), "customers": 2} for p in ("P1", "Q1", "P2", "Q2", "P3", "Q3")),
                  key=lambda d: d["key"])},
    "members": _members([("farm-b-1", 5, 1, 4, 0, 0, 0, 0, 2),
                         ("farm-b-2", 5, 1, 4, 1, 0, 0, 0, 4),
                         ("farm-b-3", 5, 1, 4, 0, 0, 0, 0, 4),
                         ("farm-b-4", 5, 1, 4, 0, 0, 0, 0, 2)]),
}
FARM_A_EXPECTED: dict[str, Any] = {
    "rank": 2, "score": 0.736, "weak": False, "accounts": 5, "customers": FARM_A, "keys": 5,
    "requests": 25, "watched_requests": 20, "watched_share": 0.8,
    "capabilities": {"coding": 20, "agentic": 0, "traces": 0},
    "tokens_in": 5 * 305, "tokens_out": 5 * 151, "denied": 0, "rate_limited": 5,
    "first_seen": at(2), "last_seen": at(26),
    "models": {"haiku-lite": 15, "fable-5": 10},
    "links": {"addresses": 2, "address_list": [{"key": A_IPS[0], "customers": 5},
                                               {"key": A_IPS[1], "customers": 5}],
              "networks": 0, "network_list": [], "prompts": 0, "prompt_list": []},
    "members": _members([(c, 5, 1, 4, 0, 1, 2, 0, 0) for c in FARM_A]),
}
NAT_EXPECTED: dict[str, Any] = {
    "rank": 3, "score": 0.084, "weak": True, "accounts": 3, "customers": NAT, "keys": 3,
    "requests": 12, "watched_requests": 0, "watched_share": 0.0,
    "capabilities": {"coding": 0, "agentic": 0, "traces": 0},
    "tokens_in": 3 * 60, "tokens_out": 3 * 60, "denied": 0, "rate_limited": 0,
    "first_seen": at(47), "last_seen": at(58), "models": {"haiku-lite": 12},
    "links": {"addresses": 1, "address_list": [{"key": NAT_IP, "customers": 3}],
              "networks": 0, "network_list": [], "prompts": 0, "prompt_list": []},
    "members": _members([(c, 4, 1, 0, 0, 0, 1, 0, 0) for c in NAT]),
}
