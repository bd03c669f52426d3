"""Linking customers into clusters: shared addresses, networks and prompts, union-find.

Pure functions over the aggregates ``farm_sql`` returns (no database, no
clock), so the heuristics are tested on their own. ``docs/farms.md`` says why
each rule is what it is and what it misses.

Links (each joins every customer it names into one cluster):

- **address**: customers whose decisions carry the same ``client_ip``;
- **network**: customers on *different* addresses of one IPv4 /24 or IPv6 /48
  (a network counts only when it joins customers that no shared address
  inside it already joins: otherwise it is the same evidence counted twice);
- **prompts**: two customers that sent at least ``min_shared_prompts`` (2)
  byte-identical prompts (same ``prompt_sha256``). One identical prompt is a
  common coincidence between strangers (a tutorial's example, a tool's fixed
  probe); a farm that retries a refused prompt on another account repeats it.

Not links: an address inside ``GATEWAY_TRUSTED_PROXIES`` (the record holds a
proxy's address when it forwarded no ``X-Forwarded-For``, or a hop that is not
an address), an address or
network used by more than ``max_ip_customers`` customers (carrier-grade NAT,
cloud egress: linking through it would merge strangers), a hash sent by more
than ``max_prompt_customers`` customers (health checks, SDK probes) and the
empty prompt. With ``GATEWAY_AUDIT_IP_TRUNCATE=24_48`` every stored address
is already a /24 or /48, so address links are reported as network links.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from gateway.settings import IPNetwork

EMPTY_PROMPT_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
"""SHA-256 of no text at all (a body with no strings): never a link, whatever its count."""


class UnionFind:
    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        parent = self._parent.setdefault(item, item)
        while parent != item:  # path halving keeps the trees flat
            grand = self._parent[parent]
            self._parent[item] = grand
            item, parent = grand, self._parent[grand]
        return item

    def union(self, items: Iterable[str]) -> None:
        it = iter(items)
        first = next(it, None)
        if first is None:
            return
        root = self.find(first)
        for other in it:
            other_root = self.find(other)
            if other_root != root:
                self._parent[other_root] = root

    def groups(self) -> list[list[str]]:
        found: dict[str, list[str]] = defaultdict(list)
        for item in self._parent:
            found[self.find(item)].append(item)
        return [sorted(members) for members in found.values()]


@dataclass(frozen=True, slots=True)
class Link:
    kind: str
    """``address``, ``network`` or ``prompts``."""
    key: str
    """The address, the network (CIDR), or for ``prompts`` the two customers."""
    customers: frozenset[str]
    prompts: tuple[str, ...] = ()
    """``prompts``: the SHA-256 of each prompt both customers sent."""


@dataclass(slots=True)
class Links:
    links: list[Link] = field(default_factory=list)
    crowded: list[tuple[str, int]] = field(default_factory=list)
    """Addresses and networks used by too many customers to link them: (key, customers)."""
    common_prompts: int = 0
    prompt_pairs_below_min: int = 0
    """Pairs of customers that sent identical prompts, too few to link them."""
    proxy_addresses: int = 0
    customers: int = 0
    requests: int = 0


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_ip_customers: int = 50
    max_prompt_customers: int = 10
    min_shared_prompts: int = 2
    trusted_proxies: Sequence[IPNetwork] = ()
    ip_truncated: bool = False


def network_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def find_links(pairs: Iterable[tuple[str | None, str, int]],
               prompts: Iterable[tuple[str | None, str, int, int]], limits: Thresholds) -> Links:
    """Every link in the window from (address, customer, requests) pairs and
    (hash, customer, requests, customers of the hash) rows."""
    out = Links()
    by_address: dict[str, set[str]] = defaultdict(set)
    seen: set[str] = set()
    for address, customer, n in pairs:
        seen.add(customer)
        out.requests += n
        if address is not None:
            by_address[address].add(customer)
    out.customers = len(seen)
    networks: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for address, customers in by_address.items():
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            parsed = None  # not an address (e.g. "unknown"): an exact match is all we have
        if parsed is not None and any(parsed in net for net in limits.trusted_proxies):
            out.proxy_addresses += 1
            continue
        if parsed is not None and not limits.ip_truncated:
            networks[network_of(parsed)][address] = customers
        kind = "network" if limits.ip_truncated else "address"
        _add(out, kind, address, customers, limits.max_ip_customers)
    for network, members in networks.items():
        _network_link(out, network, members, limits.max_ip_customers)
    _prompt_links(out, prompts, limits.max_prompt_customers, limits.min_shared_prompts)
    return out


def _add(out: Links, kind: str, key: str, customers: set[str], limit: int) -> None:
    if len(customers) < 2:
        return
    if len(customers) > limit:
        out.crowded.append((key, len(customers)))
        return
    out.links.append(Link(kind, key, frozenset(customers)))


def _network_link(out: Links, network: str, members: dict[str, set[str]], limit: int) -> None:
    if len(members) < 2:
        return  # one address: its own link (if shared) already says everything
    local = UnionFind()
    for customers in members.values():
        local.union(customers)
    if len(local.groups()) < 2:
        return  # every customer here is already joined through a shared address
    _add(out, "network", network, set().union(*members.values()), limit)


def _prompt_links(out: Links, prompts: Iterable[tuple[str | None, str, int, int]], limit: int,
                  min_shared: int) -> None:
    by_hash: dict[str, set[str]] = defaultdict(set)
    for digest, customer, _n, sent_by in prompts:
        if digest is None or digest == EMPTY_PROMPT_SHA256:
            continue  # no body (GET /v1/models), or a body with no text: not a prompt
        if sent_by > limit:
            out.common_prompts += 1  # the query sends one row for such a hash
            continue
        by_hash[digest].add(customer)
    # Pairs, not hashes: a hash names at most ``limit`` customers, so at most
    # limit*(limit-1)/2 pairs each; a pair links only on ``min_shared`` hashes.
    shared: dict[tuple[str, str], list[str]] = defaultdict(list)
    for digest, customers in by_hash.items():
        for pair in combinations(sorted(customers), 2):
            shared[pair].append(digest)
    for (a, b), digests in sorted(shared.items()):
        if len(digests) < min_shared:
            out.prompt_pairs_below_min += 1
            continue
        out.links.append(Link("prompts", f"{a} {b}", frozenset((a, b)), tuple(sorted(digests))))


@dataclass(slots=True)
class Cluster:
    customers: list[str]
    links: list[Link]

    def count(self, kind: str) -> int:
        return sum(1 for link in self.links if link.kind == kind)

    def shared_prompts(self, customer: str | None = None) -> dict[str, set[str]]:
        """Each identical prompt of the linked pairs (of ``customer``'s pairs): who sent it."""
        found: dict[str, set[str]] = defaultdict(set)
        for link in self.links:
            if link.kind == "prompts" and (customer is None or customer in link.customers):
                for digest in link.prompts:
                    found[digest] |= link.customers
        return found

    @property
    def weak(self) -> bool:
        """Nothing but one shared address or network joins these customers.

        Behind one NAT (an office, a campus, a household, a VPN exit) unrelated
        customers share an address; that alone says nothing about one actor.
        """
        return self.count("prompts") == 0 and self.count("address") + self.count("network") <= 1


def clusters(found: Links, min_accounts: int) -> list[Cluster]:
    """Connected components of at least ``min_accounts`` customers, with their links."""
    uf = UnionFind()
    for link in found.links:
        uf.union(sorted(link.customers))
    out: dict[str, Cluster] = {}
    for members in uf.groups():
        if len(members) >= min_accounts:
            out[uf.find(members[0])] = Cluster(members, [])
    for link in found.links:
        cluster = out.get(uf.find(next(iter(link.customers))))
        if cluster is not None:
            cluster.links.append(link)
    for cluster in out.values():
        cluster.links.sort(key=lambda link: (link.kind, -len(link.customers), link.key))
    return list(out.values())
