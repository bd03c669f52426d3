"""Where a request comes from, through the real server: what X-Forwarded-For a
trusted proxy sends, and what a .mmdb says (probe findings on the geo stage)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, GatewayFactory
from tests.support import geoip
from tests.support.processes import Admin, Proc, free_port

pytestmark = pytest.mark.e2e

ONLY_LOOPBACK = {"GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"}
KP_IP = "175.45.176.1"  # North Korea in the offline RIR data
# The same host written as IPv6 transition addresses (tests/geo/test_addresses.py).
KP_AS_IPV6 = [
    "2002:af2d:b001::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:50d2:4ffe",  # Teredo
    "::af2d:b001",  # IPv4-compatible (::175.45.176.1)
    "64:ff9b::af2d:b001",  # NAT64 well-known prefix
]


def chat(gateway: Proc, key: str, forwarded_for: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": forwarded_for},
        json={"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def record_of(admin: Admin, response: httpx.Response) -> dict[str, object]:
    found = admin.http.get(f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}")
    assert found.status_code == 200, found.text
    record: dict[str, object] = found.json()
    return record


def test_ipv6_transition_addresses_are_located_on_their_ipv4_host(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(env=ONLY_LOOPBACK)
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    assert chat(gateway, key, KP_IP).status_code == 403
    for address in KP_AS_IPV6:
        response = chat(gateway, key, address)
        assert response.status_code == 403, (address, response.text)
        assert response.json()["error"]["code"] == "sanctioned-origin", address
        record = record_of(admin, response)
        # Recorded as received, located where the IPv4 host is.
        assert record["client_ip"] == address and record["origin_country"] == "KP", record


def test_an_operators_nat64_prefix_locates_the_ipv4_client_it_carries(
    gateway_factory: GatewayFactory,
) -> None:
    """Behind a translator with a network-specific prefix (SIIT-DC, RFC 7755)
    every IPv4 client arrives as an address under that prefix. Unconfigured,
    North Korea's 175.45.176.1 written under 2001:db8:122::/48 was an unknown
    origin; configured, it is located where that IPv4 host is."""
    kp_under_prefix = "2001:db8:122:af2d:b0:100::"  # RFC 6052 /48 form of 175.45.176.1
    gateway = gateway_factory(env={**ONLY_LOOPBACK, "GATEWAY_NAT64_PREFIXES": "2001:db8:122::/48"})
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    response = chat(gateway, key, kp_under_prefix)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "sanctioned-origin"
    record = record_of(admin, response)
    assert record["client_ip"] == kp_under_prefix and record["origin_country"] == "KP", record


def test_a_database_without_countries_is_refused_at_start_up(tmp_path: Path) -> None:
    pytest.importorskip("mmdb_writer")
    db = geoip.write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", geoip.ASN_RECORDS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_GEOIP_DB"] = str(db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "serve", "--demo", "--port", str(free_port())],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("gateway serve started with an ASN database (every lookup then raised)")
    said = " ".join(output.split())
    assert proc.returncode == 2, output
    assert "GATEWAY_GEOIP_DB" in said and "GeoLite2-ASN" in said, output
    assert "Traceback" not in output


def test_an_enterprise_database_locates_regions(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    pytest.importorskip("mmdb_writer")
    db = geoip.write_mmdb(tmp_path / "ent.mmdb", "GeoIP2-Enterprise", geoip.RECORDS)
    gateway = gateway_factory(env={**ONLY_LOOPBACK, "GATEWAY_GEOIP_DB": str(db)})
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    response = chat(gateway, key, geoip.CRIMEA_IP)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "sanctioned-origin"
    record = record_of(admin, response)
    assert (record["origin_country"], record["origin_region"]) == ("UA", "UA-43")
    assert chat(gateway, key, geoip.KYIV_IP).status_code == 200


def test_a_lookup_that_raises_is_an_unknown_origin_not_a_500(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    pytest.importorskip("mmdb_writer")
    db = geoip.write_mmdb(tmp_path / "city.mmdb", "GeoIP2-City", geoip.RECORDS)
    geoip.corrupt_data_section(db)
    gateway = gateway_factory(env={**ONLY_LOOPBACK, "GATEWAY_GEOIP_DB": str(db)})
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    response = chat(gateway, key, geoip.CRIMEA_IP)
    # The default bundle has no origin_unknown rule: unknown origins are served.
    assert response.status_code == 200, response.text
    record = record_of(admin, response)
    assert record["client_ip"] == geoip.CRIMEA_IP and record["origin_country"] is None
    assert "geolocation lookup failed for 81.2.69.142" in gateway.output()


def test_a_subdivision_written_whole_is_still_the_region(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    # A database writing "UA-43" where MaxMind writes "43" gave region UA-UA-43:
    # Crimea, served.
    pytest.importorskip("mmdb_writer")
    db = geoip.write_mmdb(tmp_path / "city.mmdb", "GeoIP2-City", geoip.RECORDS)
    gateway = gateway_factory(env={**ONLY_LOOPBACK, "GATEWAY_GEOIP_DB": str(db)})
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    response = chat(gateway, key, geoip.WHOLE_CODE_IP)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "sanctioned-origin"
    assert record_of(admin, response)["origin_region"] == "UA-43"
    response = chat(gateway, key, geoip.BAD_REGION_IP)
    assert response.status_code == 200, response.text
    record = record_of(admin, response)
    assert (record["origin_country"], record["origin_region"]) == ("UA", None)


def test_garbage_from_a_trusted_proxy_records_the_proxy(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory(env=ONLY_LOOPBACK)
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    for garbage in ("unknown", "for=175.45.176.1", "8.8.8.8, _hidden", "%%%"):
        response = chat(gateway, key, garbage)
        assert response.status_code == 200, (garbage, response.text)  # unknown origin: served
        record = record_of(admin, response)
        # client_ip was null: now the proxy that sent the garbage, never located.
        assert record["client_ip"] == "127.0.0.1", (garbage, record)
        assert record["origin_country"] is None, (garbage, record)
    warnings = [line for line in gateway.output().splitlines() if "not an address" in line]
    assert len(warnings) == 1 and "trusted proxy 127.0.0.1" in warnings[0], warnings


def test_trusting_the_whole_internet_is_a_start_up_warning(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(env={"GATEWAY_TRUSTED_PROXIES": "0.0.0.0/0,::/0"})
    said = [line for line in gateway.output().splitlines() if "GATEWAY_TRUSTED_PROXIES" in line]
    assert len(said) == 1, gateway.output()[-2000:]
    assert "0.0.0.0/0, ::/0 (the whole internet)" in said[0] and '"warning"' in said[0]
