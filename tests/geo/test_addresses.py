"""Addresses as written in headers, and the IPv4 host an IPv6 transition address carries."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_address

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
