"""IP -> Origin: trusted-proxy XFF walking, iptocc lookups, and a real .mmdb."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest

from gateway.geo.locate import IPLocator, MmdbLookup, build_locator, iptocc_lookup
from gateway.geo.origin import Origin
from gateway.settings import Settings

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))


def fake_lookup(ip: str) -> tuple[str | None, str | None]:
    return {"81.2.69.142": ("GB", None), "8.8.8.8": ("US", None)}.get(ip, (None, None))


def test_peer_is_the_client_without_trusted_proxies() -> None:
    loc = IPLocator(fake_lookup)
    # A client sending its own XFF header must not choose its address.
    assert loc.locate("8.8.8.8", "81.2.69.142") == Origin("8.8.8.8", "US")


def test_untrusted_peer_xff_ignored() -> None:
    loc = IPLocator(fake_lookup, TRUSTED)
    assert loc.locate("8.8.8.8", "81.2.69.142").client_ip == "8.8.8.8"


def test_trusted_peer_walks_from_the_right() -> None:
    loc = IPLocator(fake_lookup, TRUSTED)
    # client spoofed 8.8.8.8 at the left; the real client is 81.2.69.142,
    # appended by our proxies 10.0.0.5 and 10.1.1.1.
    origin = loc.locate("10.0.0.9", "8.8.8.8, 81.2.69.142, 10.0.0.5, 10.1.1.1")
    assert origin == Origin("81.2.69.142", "GB")


def test_all_hops_trusted_uses_leftmost() -> None:
    loc = IPLocator(fake_lookup, TRUSTED)
    assert loc.locate("10.0.0.9", "10.2.0.1, 10.0.0.5").client_ip == "10.2.0.1"


def test_garbage_hop_behind_trusted_proxy_is_unknown_and_names_the_proxy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loc = IPLocator(fake_lookup, TRUSTED)
    with caplog.at_level(logging.WARNING, logger="gateway.geo"):
        # Nothing left of the garbage is believed, and the proxy is not located
        # (its country is not the client's); but the record names the proxy.
        assert loc.locate("10.0.0.9", "8.8.8.8, not-an-ip") == Origin("10.0.0.9")
        assert loc.locate("10.0.0.9", "for=81.2.69.142") == Origin("10.0.0.9")
        # Deeper in the chain, the trusted proxy that wrote it.
        assert loc.locate("10.0.0.9", "8.8.8.8, unknown, 10.0.0.5") == Origin("10.0.0.5")
    warnings = [r.getMessage() for r in caplog.records if "not an address" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once a minute, not once a request
    assert "trusted proxy 10.0.0.9" in warnings[0] and "'not-an-ip'" in warnings[0]


def test_ports_brackets_and_v6() -> None:
    loc = IPLocator(fake_lookup, TRUSTED)
    assert loc.locate("2001:db8::1", "81.2.69.142:4433").client_ip == "81.2.69.142"
    assert loc.locate("10.0.0.1", "[2001:4860:4860::8888]:443").client_ip == "2001:4860:4860::8888"
    assert loc.locate("::ffff:8.8.8.8", None) == Origin("8.8.8.8", "US")


# North Korea's 175.45.176.1 as 6to4, Teredo, IPv4-compatible and NAT64 (test_addresses.py).
KP_AS_IPV6 = ("2002:af2d:b001::1", "2001:0:4136:e378:8000:63bf:50d2:4ffe", "::175.45.176.1",
              "64:ff9b::af2d:b001")


def test_located_on_the_ipv4_host_recorded_as_received() -> None:
    def lookup(ip: str) -> tuple[str | None, str | None]:
        return {"175.45.176.1": ("KP", None)}.get(ip, (None, None))

    loc = IPLocator(lookup)
    for text in KP_AS_IPV6:
        assert loc.locate(text, None) == Origin(str(ipaddress.ip_address(text)), "KP"), text
    # A transition address around a private IPv4 host is as unknown as the host.
    assert loc.locate("2002:a00:1::1", None) == Origin("2002:a00:1::1")


def test_private_and_missing_peer_are_unknown() -> None:
    loc = IPLocator(fake_lookup)
    assert loc.locate("192.168.1.4", None) == Origin("192.168.1.4")
    assert loc.locate("127.0.0.1", None).unknown
    assert loc.locate(None, None) == Origin(None)


def test_lookups_are_cached() -> None:
    calls: list[str] = []

    def counting(ip: str) -> tuple[str | None, str | None]:
        calls.append(ip)
        return ("US", None)

    loc = IPLocator(counting)
    for _ in range(5):
        loc.locate("8.8.8.8", None)
    assert calls == ["8.8.8.8"]


def test_headers_are_never_cached() -> None:
    # X-Forwarded-For is client-written and read before authentication: a cache
    # keyed on it kept every unique header sent (1 MB each, if the client chose).
    import tracemalloc

    loc = IPLocator(fake_lookup, TRUSTED)
    loc.locate("8.8.8.8", None)
    loc.locate("10.0.0.9", "81.2.69.142")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300):
            junk = f"{i}" + "1" * 4000
            # An untrusted peer: the header is not read.
            assert loc.locate("8.8.8.8", junk) == Origin("8.8.8.8", "US")
            # A trusted one: only the hops walked are read.
            assert loc.locate("10.0.0.9", f"{junk}, 81.2.69.142") == Origin("81.2.69.142", "GB")
            # A trusted proxy appending junk: nothing believed, and nothing kept.
            assert loc.locate("10.0.0.9", junk).country is None
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 50_000, f"{held} bytes held after 900 unique 4 KB headers"


def test_iptocc_real_data() -> None:
    assert iptocc_lookup("8.8.8.8") == ("US", None)
    assert iptocc_lookup("10.0.0.1") == (None, None)
    loc = build_locator(Settings(demo=True))
    assert loc.locate("8.8.8.8", None) == Origin("8.8.8.8", "US")


def _write_mmdb(path: Path, database_type: str, city: bool) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en"],
        description="gateway test db",
    )
    crimea: dict[str, object] = {"country": {"iso_code": "UA"}}
    if city:
        crimea["subdivisions"] = [{"iso_code": "43"}]
    writer.insert_network(IPSet(["81.2.69.0/24"]), crimea)
    writer.insert_network(IPSet(["8.8.8.0/24"]), {"country": {"iso_code": "US"}})
    writer.to_db_file(str(path))


def test_mmdb_city_database_adds_iso_3166_2_region(tmp_path: Path) -> None:
    pytest.importorskip("mmdb_writer")
    db = tmp_path / "city.mmdb"
    _write_mmdb(db, "GeoIP2-City", city=True)
    loc = build_locator(Settings(demo=True, geoip_db=db))
    assert loc.locate("81.2.69.142", None) == Origin("81.2.69.142", "UA", "UA-43")
    assert loc.locate("8.8.8.8", None) == Origin("8.8.8.8", "US", None)
    assert loc.locate("1.1.1.1", None) == Origin("1.1.1.1")  # not in the file


def test_mmdb_country_database(tmp_path: Path) -> None:
    pytest.importorskip("mmdb_writer")
    db = tmp_path / "country.mmdb"
    _write_mmdb(db, "GeoLite2-Country", city=False)
    lookup = MmdbLookup(db)
    try:
        assert lookup("81.2.69.142") == ("UA", None)
    finally:
        lookup.close()


def test_trusting_wide_networks_is_a_start_up_warning(caplog: pytest.LogCaptureFixture) -> None:
    # 0.0.0.0/0 started silently: every client could then choose its origin country.
    with caplog.at_level(logging.WARNING, logger="gateway.geo"):
        build_locator(Settings(demo=True, trusted_proxies="10.0.0.0/8,2001:db8::/32"))
    assert not caplog.records
    wide = "0.0.0.0/0,::/0,11.0.0.0/7,10.0.0.0/8,2001:db8::/31"
    with caplog.at_level(logging.WARNING, logger="gateway.geo"):
        build_locator(Settings(demo=True, trusted_proxies=wide))
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "GATEWAY_TRUSTED_PROXIES" in said and "the whole internet" in said
    from gateway.geo.locate import too_wide

    nets = [ipaddress.ip_network(net, strict=False) for net in wide.split(",")]
    named = [str(net) for net in too_wide(nets)]
    assert named == ["0.0.0.0/0", "::/0", "10.0.0.0/7", "2001:db8::/31"]
    assert all(net in said for net in named), said
