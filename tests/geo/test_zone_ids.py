"""An IPv6 zone id (``%eth0``, RFC 4007; ``%25eth0`` inside brackets, RFC
6874) names an interface of the host that wrote the address, not a part of
the address. Kept, a native IPv6 address of Iran with one was looked up as
written: iptocc answered None, the origin was unknown and the default bundle
served it (a 6to4 address with a zone id was located, so only native IPv6
escaped)."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.geo.addresses import parse_ip
from gateway.geo.locate import IPLocator, iptocc_lookup
from gateway.geo.origin import Origin

IR_V6 = "2a00:4000::1"  # Iran in the offline RIR data
TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    "written", [f"{IR_V6}%eth0", f"{IR_V6}%1", f"[{IR_V6}%25eth0]:443", f"[{IR_V6}%eth0]"]
)
def test_a_zone_id_is_not_part_of_the_address(written: str) -> None:
    assert parse_ip(written) == ipaddress.IPv6Address(IR_V6)
    loc = IPLocator(iptocc_lookup, TRUSTED)
    assert loc.locate("10.0.0.9", written) == Origin(IR_V6, "IR")


def test_the_address_without_a_zone_is_located_as_before() -> None:
    assert IPLocator(iptocc_lookup, TRUSTED).locate("10.0.0.9", IR_V6) == Origin(IR_V6, "IR")
