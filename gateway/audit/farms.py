"""The account-farm (distillation) report: groups of customers that look like one actor.

``farm_report(engine, options)`` reads one window of the decision log and
answers a JSON-ready dict (``gateway audit farms``, ``GET
/admin/v1/audit/farms``). Read-only: it writes nothing, to the log or anywhere.

Steps: one aggregate scan of the window (``farm_sql``: address x customer
pairs and shared prompt hashes), linking in Python (``farm_links``: union-find
over shared addresses, networks and prompts), then per-member figures for the
clusters it reports, read through the customer index. The heuristics, the
score and their limits are in ``docs/farms.md``.

Score (higher first)::

    confidence = 1 - 0.5**prompts * 0.7**addresses * 0.9**networks
    score = confidence * log10(1 + requests) * (0.25 + 0.75 * watched_share)
            * (1 + rate_limited_share)

``addresses``/``networks`` count the cluster's shared addresses and networks,
``prompts`` the distinct identical prompts of its linked pairs (each
independent coincidence makes "one actor" likelier: a noisy-OR);
``watched_share`` is the share of requests carrying any watched capability
(``coding``, ``agentic``, ``traces`` by default: what distillation harvests);
``rate_limited_share`` the share refused with 429 (farms run at their limits).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.audit import farm_sql as q
from gateway.audit.chain import utc
from gateway.audit.farm_links import Cluster, Links, Thresholds, clusters, find_links
from gateway.settings import Settings

REPORT_VERSION = 1
DEFAULT_CAPABILITIES = ("coding", "agentic", "traces")
DEFAULT_MIN_ACCOUNTS = 3
LIST_CAP = 20
"""Longest list of links (or ignored addresses) shown per kind; totals are always given."""
CAPABILITY_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""Names the report can match exactly inside the stored JSON list (no quotes, no escapes)."""


@dataclass(frozen=True, slots=True)
class FarmOptions:
    from_ts: datetime
    to_ts: datetime
    min_accounts: int = DEFAULT_MIN_ACCOUNTS
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    include_weak: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        if self.to_ts <= self.from_ts:
            raise ValueError("to: must be after from")
        if self.min_accounts < 2:
            raise ValueError("min_accounts: a cluster needs at least 2 customers")
        for name in self.capabilities:
            if CAPABILITY_NAME.fullmatch(name) is None:
                raise ValueError(f"capability: not a capability name: {name!r}")
        if self.thresholds.max_ip_customers < 2 or self.thresholds.max_prompt_customers < 2:
            raise ValueError("max_*_customers: a link needs at least 2 customers")
        if self.thresholds.min_shared_prompts < 1:
            raise ValueError("min_shared_prompts: at least 1")


def farm_options(
    settings: Settings,
    from_ts: datetime,
    to_ts: datetime,
    *,
    min_accounts: int,
    capabilities: Sequence[str] | None,
    include_weak: bool,
    max_ip_customers: int,
    max_prompt_customers: int,
    min_shared_prompts: int,
) -> FarmOptions:
    """The options of one report (CLI or API); ValueError names a bad one.

    The deployment's trusted proxies never link anyone, and with client
    addresses truncated (``GATEWAY_AUDIT_IP_TRUNCATE=24_48``) every address
    link is a network link."""
    return FarmOptions(
        from_ts, to_ts, min_accounts=min_accounts,
        capabilities=tuple(capabilities) if capabilities else DEFAULT_CAPABILITIES,
        include_weak=include_weak,
        thresholds=Thresholds(
            max_ip_customers=max_ip_customers, max_prompt_customers=max_prompt_customers,
            min_shared_prompts=min_shared_prompts, trusted_proxies=settings.trusted_proxies,
            ip_truncated=settings.audit_ip_truncate == "24_48"))  # fmt: skip


async def farm_report(engine: AsyncEngine, options: FarmOptions) -> dict[str, Any]:
    window = q.Window(options.from_ts, options.to_ts)
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # One snapshot for every query, so the figures add up with the links.
            await conn.execution_options(isolation_level="REPEATABLE READ")
        scanned = await q.rows(conn, q.links_query(window,
                                                   options.thresholds.max_prompt_customers))
        pairs = [(r.key, r.customer, int(r.n)) for r in scanned if r.kind == "address"]
        prompts = [(r.key, r.customer, int(r.n), int(r.k)) for r in scanned if r.kind == "prompt"]
        # Pure Python over aggregates, off the event loop: in a serving worker
        # the admin call must not stall the requests it is relaying.
        found, every = await asyncio.to_thread(_link, pairs, prompts, options)
        shown = [c for c in every if options.include_weak or not c.weak]
        members = await _figures(conn, window, [m for c in shown for m in c.customers],
                                 options.capabilities)
    items = [_cluster(c, members, options.capabilities) for c in shown]
    items.sort(key=lambda i: (-i["score"], -i["accounts"], -i["requests"], i["customers"]))
    for rank, item in enumerate(items, 1):
        item["rank"] = rank
    return _report(options, found, items, sum(1 for c in every if c.weak))


def _link(pairs: list[tuple[str | None, str, int]],
          prompts: list[tuple[str | None, str, int, int]],
          options: FarmOptions) -> tuple[Links, list[Cluster]]:
    found = find_links(pairs, prompts, options.thresholds)
    return found, clusters(found, options.min_accounts)


async def _figures(conn: AsyncConnection, window: q.Window, customers: Sequence[str],
                   capabilities: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for chunk in q.chunks(sorted(customers)):
        for r in await q.rows(conn, q.member_figures_query(window, chunk, capabilities)):
            out[r.customer_id] = {
                "requests": int(r.requests), "keys": int(r.keys), "denied": int(r.denied),
                "rate_limited": int(r.rate_limited), "watched": int(r.watched),
                "first_seen": utc(r.first_seen), "last_seen": utc(r.last_seen),
                "capabilities": {name: int(getattr(r, f"cap_{i}"))
                                 for i, name in enumerate(capabilities)},
                "models": {}, "tokens_in": 0, "tokens_out": 0,
            }
        for r in await q.rows(conn, q.member_models_query(window, chunk)):
            out[r.customer_id]["models"][r.model or "(none)"] = int(r.n)
        for r in await q.rows(conn, q.member_tokens_query(window, chunk)):
            out[r.customer_id]["tokens_in"] = int(r.tokens_in)
            out[r.customer_id]["tokens_out"] = int(r.tokens_out)
    return out


def score(cluster: Cluster, requests: int, watched: int, rate_limited: int) -> float:
    doubt = (0.5 ** len(cluster.shared_prompts()) * 0.7 ** cluster.count("address")
             * 0.9 ** cluster.count("network"))
    if requests == 0:
        return 0.0
    value = ((1 - doubt) * math.log10(1 + requests) * (0.25 + 0.75 * watched / requests)
             * (1 + rate_limited / requests))
    return round(value, 3)


def _sum(members: list[dict[str, Any]], name: str) -> int:
    return sum(int(m[name]) for m in members)


def _cluster(cluster: Cluster, figures: dict[str, dict[str, Any]],
             capabilities: Sequence[str]) -> dict[str, Any]:
    members = [figures[c] for c in cluster.customers]
    requests, watched = _sum(members, "requests"), _sum(members, "watched")
    rate_limited = _sum(members, "rate_limited")
    models: dict[str, int] = {}
    for m in members:
        for model, n in m["models"].items():
            models[model] = models.get(model, 0) + n
    return {
        "rank": 0,
        "score": score(cluster, requests, watched, rate_limited),
        "weak": cluster.weak,
        "accounts": len(cluster.customers),
        "customers": cluster.customers,
        "keys": _sum(members, "keys"),
        "requests": requests,
        "watched_requests": watched,
        "watched_share": round(watched / requests, 4) if requests else 0.0,
        "capabilities": {name: sum(m["capabilities"][name] for m in members)
                         for name in capabilities},
        "tokens_in": _sum(members, "tokens_in"),
        "tokens_out": _sum(members, "tokens_out"),
        "denied": _sum(members, "denied"),
        "rate_limited": rate_limited,
        "first_seen": _iso(min(m["first_seen"] for m in members)),
        "last_seen": _iso(max(m["last_seen"] for m in members)),
        "models": dict(sorted(models.items(), key=lambda kv: (-kv[1], kv[0]))),
        "links": _links(cluster),
        "members": [_member(c, figures[c], cluster) for c in cluster.customers],
    }


def _links(cluster: Cluster) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, plural in (("address", "addresses"), ("network", "networks")):
        links = [link for link in cluster.links if link.kind == kind]
        out[plural] = len(links)
        out[f"{kind}_list"] = [{"key": link.key, "customers": len(link.customers)}
                               for link in links[:LIST_CAP]]
    prompts = sorted(cluster.shared_prompts().items(), key=lambda kv: (-len(kv[1]), kv[0]))
    out["prompts"] = len(prompts)
    out["prompt_list"] = [{"key": digest, "customers": len(customers)}
                          for digest, customers in prompts[:LIST_CAP]]
    return out


def _member(customer: str, figures: dict[str, Any], cluster: Cluster) -> dict[str, Any]:
    shared = {kind: sum(1 for link in cluster.links
                        if link.kind == kind and customer in link.customers)
              for kind in ("address", "network")}
    return {"customer_id": customer, "requests": figures["requests"], "keys": figures["keys"],
            "watched_requests": figures["watched"], "denied": figures["denied"],
            "rate_limited": figures["rate_limited"], "shared_addresses": shared["address"],
            "shared_networks": shared["network"],
            "shared_prompts": len(cluster.shared_prompts(customer))}


def _iso(value: datetime) -> str:
    return utc(value).isoformat().replace("+00:00", "Z")


def _report(options: FarmOptions, found: Links, items: list[dict[str, Any]],
            weak: int) -> dict[str, Any]:
    limits = options.thresholds
    crowded = sorted(found.crowded, key=lambda kv: (-kv[1], kv[0]))
    return {
        "version": REPORT_VERSION,
        "from": _iso(options.from_ts),
        "to": _iso(options.to_ts),
        "parameters": {
            "min_accounts": options.min_accounts,
            "capabilities": list(options.capabilities),
            "max_ip_customers": limits.max_ip_customers,
            "max_prompt_customers": limits.max_prompt_customers,
            "min_shared_prompts": limits.min_shared_prompts,
            "include_weak": options.include_weak,
            "ip_truncated": limits.ip_truncated,
        },
        "scanned": {"customers": found.customers, "requests": found.requests,
                    "links": len(found.links)},
        "ignored": {"crowded": len(crowded),
                    "crowded_list": [{"key": k, "customers": n} for k, n in crowded[:LIST_CAP]],
                    "common_prompts": found.common_prompts,
                    "prompt_pairs_below_min": found.prompt_pairs_below_min,
                    "proxy_addresses": found.proxy_addresses},
        "weak_clusters": weak,
        "weak_clusters_hidden": 0 if options.include_weak else weak,
        "clusters": items,
    }
