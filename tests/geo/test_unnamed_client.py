"""A walk of X-Forwarded-For that ends on a trusted address names no client.

Before, the trusted proxy itself was located: a load balancer with a public
US address forwarding without X-Forwarded-For (configured for RFC 7239
``Forwarded:`` only, which the gateway does not read) made every client a
US origin in every decision record, whatever country it called from."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from gateway.geo.locate import IPLocator
from gateway.geo.origin import Origin

LB = "8.8.8.8"  # a trusted load balancer with a public (US) address
TRUSTED = (ipaddress.ip_network("8.8.8.0/24"), ipaddress.ip_network("10.0.0.0/8"))


def lookup(ip: str) -> tuple[str | None, str | None]:
    return {"8.8.8.8": ("US", None), "8.8.8.9": ("US", None),
            "175.45.176.1": ("KP", None)}.get(ip, (None, None))  # fmt: skip


def test_a_trusted_proxy_naming_no_client_is_not_the_clients_country(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loc = IPLocator(lookup, TRUSTED)
    with caplog.at_level(logging.WARNING, logger="gateway.geo"):
        assert loc.locate(LB, None) == Origin(LB)  # was Origin("8.8.8.8", "US")
        assert loc.locate(LB, None) == Origin(LB)
        # Every hop trusted: the leftmost is recorded, not located.
        assert loc.locate(LB, "8.8.8.9") == Origin("8.8.8.9")
    said = [r.getMessage() for r in caplog.records if "naming no client" in r.getMessage()]
    assert len(said) == 1 and "trusted proxy 8.8.8.8" in said[0], said  # once a minute


def test_the_client_a_trusted_proxy_names_is_located_as_before() -> None:
    loc = IPLocator(lookup, TRUSTED)
    assert loc.locate(LB, "175.45.176.1") == Origin("175.45.176.1", "KP")
    assert loc.locate(LB, "175.45.176.1, 10.0.0.5") == Origin("175.45.176.1", "KP")
    assert loc.client_ip(LB, None) == ipaddress.ip_address(LB)


def test_a_private_trusted_address_is_unknown_as_before(caplog: pytest.LogCaptureFixture) -> None:
    loc = IPLocator(lookup, TRUSTED)
    with caplog.at_level(logging.WARNING, logger="gateway.geo"):
        assert loc.locate("10.0.0.9", None) == Origin("10.0.0.9")
        assert loc.locate("10.0.0.9", "10.2.0.1").client_ip == "10.2.0.1"
    assert not [r for r in caplog.records if "naming no client" in r.getMessage()]
