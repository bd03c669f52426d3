"""Addresses as written in headers, and the IPv4 host an IPv6 transition address carries."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_address, ip_network

import pytest

from gateway.geo.addresses import embedded_ipv4, parse_ip

KP = IPv4Address("175.45.176.1")
# Each form below is an IPv6 address for the North Korean IPv4 host 175.45.176.1.
KP_AS_IPV6 = {
    "6to4": "2002:af2d:b001::1",
    "teredo": "2001:0:4136:e378:8000:63bf:50d2:4ffe",  # client bits inverted, as sent
    "ipv4-compatible": "::175.45.176.1",
    "nat64": "64:ff9b::af2d:b001",
}


@pytest.mark.parametrize("form", sorted(KP_AS_IPV6))
def test_transition_addresses_carry_their_ipv4_host(form: str) -> None:
    address = parse_ip(KP_AS_IPV6[form])
    assert address is not None and address.version == 6
    assert embedded_ipv4(address) == KP


def test_ordinary_addresses_carry_none() -> None:
    for text in ("2001:4860:4860::8888", "::1", "::", "fe80::1", "64:ff9b:1::af2d:b001",
                 "2a02:1::1", "175.45.176.1"):
        assert embedded_ipv4(ip_address(text)) is None, text


def test_parse_forms() -> None:
    assert parse_ip("81.2.69.142:4433") == ip_address("81.2.69.142")
    assert parse_ip("[2002:af2d:b001::1]:443") == ip_address("2002:af2d:b001::1")
    assert parse_ip(' "::ffff:8.8.8.8" ') == ip_address("8.8.8.8")  # mapped: the IPv4 itself
    for junk in ("unknown", "for=1.2.3.4", "", "1.2.3", "_hidden"):
        assert parse_ip(junk) is None, junk


# RFC 6052 section 2.4's table: 192.0.2.33 under 2001:db8::/32 ... /96, the
# IPv4 bits around the reserved u-octet (bits 64-71) for the lengths below 96.
RFC6052_EXAMPLES = {
    "2001:db8::/32": "2001:db8:c000:221::",
    "2001:db8:100::/40": "2001:db8:1c0:2:21::",
    "2001:db8:122::/48": "2001:db8:122:c000:2:2100::",
    "2001:db8:122:300::/56": "2001:db8:122:3c0:0:221::",
    "2001:db8:122:344::/64": "2001:db8:122:344:c0:2:2100:0",
    "2001:db8:122:344::/96": "2001:db8:122:344::192.0.2.33",
}


@pytest.mark.parametrize("prefix", sorted(RFC6052_EXAMPLES))
def test_an_operators_nat64_prefix_is_decoded_at_its_length(prefix: str) -> None:
    """A gateway behind a SIIT or NAT64 translator with a network-specific
    prefix sees IPv4 clients as addresses under that prefix: only the operator
    knows its length, so it is configured (GATEWAY_NAT64_PREFIXES)."""
    prefixes = (ip_network(prefix),)
    address = ip_address(RFC6052_EXAMPLES[prefix])
    assert embedded_ipv4(address, prefixes) == IPv4Address("192.0.2.33")
    # Unconfigured, the same address is an ordinary IPv6 host.
    assert embedded_ipv4(address) is None


def test_an_address_outside_the_configured_prefix_is_not_decoded() -> None:
    prefixes = (ip_network("2001:db8:122::/48"),)
    assert embedded_ipv4(ip_address("2001:db8:123:c000:2:2100::"), prefixes) is None
    # The well-known prefix is decoded whatever is configured.
    assert embedded_ipv4(ip_address("64:ff9b::af2d:b001"), prefixes) == KP
