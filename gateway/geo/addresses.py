"""Addresses as clients and proxies write them, and the IPv4 some IPv6 ones carry.

An IPv6 transition address is an IPv4 host reached over IPv6: the country is
the IPv4 address's. Located as IPv6, 6to4 ``2002:af2d:b001::1`` (North Korea's
175.45.176.1) was unknown, and a sanctioned origin was served by writing its
address another way. ``embedded_ipv4`` decodes every form a client can hand
a proxy: 6to4, Teredo, IPv4-compatible, the NAT64 well-known prefix, and
the network-specific NAT64 prefixes an operator configures
(``GATEWAY_NAT64_PREFIXES``). IPv4-mapped (``::ffff:a.b.c.d``) is how
dual-stack sockets show IPv4 peers: ``parse_ip`` turns it into the IPv4
address itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""RFC 6052's well-known prefix: the IPv4 address is the last 32 bits. Local
NAT64 prefixes (``64:ff9b:1::/48``, an operator's own) place it by a prefix
length only that network knows: they are decoded when configured."""

NAT64_PREFIX_LENGTHS = frozenset({32, 40, 48, 56, 64, 96})
"""The prefix lengths RFC 6052 section 2.2 defines an address format for."""


def parse_ip(text: str) -> IPAddress | None:
    """An address from a header hop: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80`` or ``::1``,
    without any zone id (``fe80::1%eth0`` is ``fe80::1``)."""
    value = text.strip().strip('"')
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    # A zone id (``%eth0``; ``%25eth0`` in brackets) names an interface of the
    # writer's host, not a part of the address: kept, ``2a00:4000::1%eth0``
    # (Iran) was looked up as written, found nowhere, and served as unknown.
    value = value.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def embedded_ipv4(
    address: IPAddress, nat64: Sequence[ipaddress.IPv6Network] = ()
) -> ipaddress.IPv4Address | None:
    """The IPv4 host an IPv6 transition address stands for, or None.

    ``nat64`` are the operator's network-specific NAT64 prefixes, each of a
    length in ``NAT64_PREFIX_LENGTHS``.
    """
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    for prefix in nat64:
        if address in prefix:
            return nat64_ipv4(address, prefix.prefixlen)
    if address.sixtofour is not None:  # 2002:AABB:CCDD::/48 -> AA.BB.CC.DD
        return address.sixtofour
    if address.teredo is not None:  # 2001::/32 -> (server, client): the client is the host
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    value = int(address)
    if value >> 32 == 0 and value > 1:
        # IPv4-compatible ::a.b.c.d: deprecated (RFC 4291 2.5.5.1), still
        # accepted by parsers and stacks. :: and ::1 are not IPv4 hosts.
        return ipaddress.IPv4Address(value)
    return None


def nat64_ipv4(address: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address RFC 6052 section 2.2 places after a ``prefix_length`` prefix.

    Below /96 the 32 bits straddle the reserved "u" octet (bits 64-71), which
    is skipped: drop it, and the address is the 32 bits after the prefix.
    """
    value = int(address)
    if prefix_length == 96:
        return ipaddress.IPv4Address(value & 0xFFFF_FFFF)
    without_u = (value >> 64 << 56) | (value & (1 << 56) - 1)  # 120 bits
    return ipaddress.IPv4Address(without_u >> (120 - prefix_length - 32) & 0xFFFF_FFFF)
