"""The farm report's linking rules on hand-made aggregates (``farm_links`` is pure)."""

from __future__ import annotations

import ipaddress

from gateway.audit.farm_links import (
    EMPTY_PROMPT_SHA256,
    Thresholds,
    UnionFind,
    clusters,
    find_links,
)


def _links(pairs: list[tuple[str | None, str, int]], **limits: object) -> list[tuple[str, str,
                                                                                   list[str]]]:
    found = find_links(pairs, [], Thresholds(**limits))  # type: ignore[arg-type]
    return sorted((link.kind, link.key, sorted(link.customers)) for link in found.links)


def test_neighbouring_addresses_link_through_their_network() -> None:
    pairs = [("203.0.113.5", "a", 1), ("203.0.113.6", "b", 1), ("203.0.113.7", "c", 1),
             ("203.0.114.7", "d", 1)]
    assert _links(pairs) == [("network", "203.0.113.0/24", ["a", "b", "c"])]


def test_a_network_already_explained_by_a_shared_address_is_not_counted_again() -> None:
    pairs = [("203.0.113.5", "a", 1), ("203.0.113.5", "b", 1), ("203.0.113.6", "a", 1)]
    assert _links(pairs) == [("address", "203.0.113.5", ["a", "b"])]


def test_ipv6_networks_are_48s() -> None:
    pairs = [("2001:db8:abcd:1::1", "a", 1), ("2001:db8:abcd:2::2", "b", 1),
             ("2001:db8:abce::1", "c", 1), (None, "d", 3)]
    assert _links(pairs) == [("network", "2001:db8:abcd::/48", ["a", "b"])]
    found = find_links(pairs, [], Thresholds())
    assert (found.customers, found.requests) == (4, 6)


def test_trusted_proxy_addresses_link_nobody() -> None:
    """A record holds the proxy's address when it sent no X-Forwarded-For."""
    pairs = [("10.0.0.2", "a", 1), ("10.0.0.2", "b", 1), ("10.0.0.3", "c", 1)]
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    assert _links(pairs, trusted_proxies=proxies) == []
    assert find_links(pairs, [], Thresholds(trusted_proxies=proxies)).proxy_addresses == 2
    assert _links(pairs) == [("address", "10.0.0.2", ["a", "b"]),
                             ("network", "10.0.0.0/24", ["a", "b", "c"])]


def test_truncated_addresses_are_network_links() -> None:
    """With GATEWAY_AUDIT_IP_TRUNCATE=24_48 a stored address is a /24 or /48 already."""
    pairs = [("203.0.113.0", "a", 1), ("203.0.113.0", "b", 1), ("2001:db8:1::", "c", 1),
             ("2001:db8:1::", "b", 1)]
    assert _links(pairs, ip_truncated=True) == [("network", "2001:db8:1::", ["b", "c"]),
                                                ("network", "203.0.113.0", ["a", "b"])]


def test_crowded_addresses_and_networks_link_nobody() -> None:
    pairs: list[tuple[str | None, str, int]] = [("198.51.100.1", f"c{i}", 1) for i in range(4)]
    pairs += [(f"192.0.2.{i}", f"n{i}", 1) for i in range(4)]
    found = find_links(pairs, [], Thresholds(max_ip_customers=3))
    assert found.links == []
    assert sorted(found.crowded) == [("192.0.2.0/24", 4), ("198.51.100.1", 4)]


def test_prompt_links_are_pairs_with_enough_identical_prompts() -> None:
    prompts = [("h1", "a", 2, 3), ("h1", "b", 1, 3), ("h1", "c", 1, 3), ("h2", "a", 1, 2),
               ("h2", "b", 1, 2), ("h3", "a", 1, 40)]
    found = find_links([], prompts, Thresholds(max_prompt_customers=10))
    assert [(link.kind, link.key, sorted(link.customers), link.prompts)
            for link in found.links] == [("prompts", "a b", ["a", "b"], ("h1", "h2"))]
    assert (found.common_prompts, found.prompt_pairs_below_min) == (1, 2)
    loose = find_links([], prompts, Thresholds(min_shared_prompts=1))
    assert sorted(link.key for link in loose.links) == ["a b", "a c", "b c"]


def test_no_body_and_the_empty_prompt_are_not_prompts() -> None:
    """GET /v1/models has no prompt hash; a body without text hashes to sha256(b"")."""
    prompts = [(None, "a", 5, 2), (None, "b", 5, 2), (EMPTY_PROMPT_SHA256, "a", 1, 2),
               (EMPTY_PROMPT_SHA256, "b", 1, 2), ("h", "a", 1, 2), ("h", "b", 1, 2)]
    found = find_links([], prompts, Thresholds(min_shared_prompts=2))
    assert (found.links, found.prompt_pairs_below_min) == ([], 1)


def test_weak_means_one_address_or_network_and_nothing_else() -> None:
    one_address = find_links([("192.0.2.1", x, 1) for x in "abc"], [], Thresholds())
    assert [c.weak for c in clusters(one_address, 3)] == [True]
    two = [("192.0.2.1", x, 1) for x in "abc"] + [("198.51.100.1", x, 1) for x in "ab"]
    assert [c.weak for c in clusters(find_links(two, [], Thresholds()), 3)] == [False]
    one_network = [("192.0.2.1", "a", 1), ("192.0.2.2", "b", 1), ("192.0.2.3", "c", 1)]
    assert [c.weak for c in clusters(find_links(one_network, [], Thresholds()), 3)] == [True]
    and_network = [*one_network, ("192.0.2.1", "d", 1)]
    assert [c.weak for c in clusters(find_links(and_network, [], Thresholds()), 3)] == [False]
    prompt = find_links([("192.0.2.1", x, 1) for x in "abc"],
                        [("h", "a", 1, 2), ("h", "d", 1, 2), ("i", "a", 1, 2), ("i", "d", 1, 2)],
                        Thresholds())
    (joined,) = clusters(prompt, 3)
    assert (joined.customers, joined.weak) == (["a", "b", "c", "d"], False)
    assert clusters(prompt, 5) == []


def test_union_find_is_independent_of_order() -> None:
    first, second = UnionFind(), UnionFind()
    for group in (["d", "c"], ["b", "a"], ["c", "b"], ["x", "y"]):
        first.union(group)
    for group in (["y", "x"], ["b", "c"], ["a", "b"], ["c", "d"]):
        second.union(group)
    assert sorted(first.groups()) == sorted(second.groups()) == [["a", "b", "c", "d"],
                                                                 ["x", "y"]]
