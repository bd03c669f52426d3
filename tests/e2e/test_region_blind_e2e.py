"""Region rules (Crimea UA-43, Sevastopol UA-40, DNR/LNR UA-14/UA-09) need a
geolocation that gives regions. Without one (the default offline RIR data,
or a Country database) they never match, and the gateway started silently:
a compliance officer reading ``comprehensively_sanctioned`` believed Crimea
refused. Now start-up says so, naming the regions. Also here: an origin the
geolocation must not claim to know (a walk of X-Forwarded-For that ends on a
trusted proxy's own public address)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, GatewayFactory
from tests.support import geoip
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
ONLY_LOOPBACK = {"GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"}
SAYS = "the policy's origin rules name regions"


def region_warnings(gateway: Proc) -> list[str]:
    return [line for line in gateway.output().splitlines() if SAYS in line]


def chat(gateway: Proc, key: str, ip: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": ip},
        json={"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def test_offline_rir_data_and_region_rules_are_a_start_up_warning(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(env=ONLY_LOOPBACK)
    said = region_warnings(gateway)
    assert len(said) == 1, gateway.output()[-3000:]
    assert "UA-09, UA-14, UA-40, UA-43" in said[0] and "iptocc" in said[0], said
    assert '"warning"' in said[0] and "GATEWAY_GEOIP_DB" in said[0], said


def test_a_country_database_is_warned_about_and_serves_crimea_on_its_country(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    pytest.importorskip("mmdb_writer")
    db = geoip.write_mmdb(tmp_path / "country.mmdb", "GeoLite2-Country", geoip.RECORDS)
    gateway = gateway_factory(env={**ONLY_LOOPBACK, "GATEWAY_GEOIP_DB": str(db)})
    said = region_warnings(gateway)
    assert len(said) == 1 and "GeoLite2-Country" in said[0], gateway.output()[-3000:]
    # What the warning says: the Crimean address is UA, region unknown, served.
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    response = chat(gateway, key, geoip.CRIMEA_IP)
    assert response.status_code == 200, response.text
    record = admin.http.get(
        f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}"
    ).json()
    assert (record["origin_country"], record["origin_region"]) == ("UA", None), record


def test_a_city_database_is_not_warned_about(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    pytest.importorskip("mmdb_writer")
    db = geoip.write_mmdb(tmp_path / "city.mmdb", "GeoIP2-City", geoip.RECORDS)
    gateway = gateway_factory(env={**ONLY_LOOPBACK, "GATEWAY_GEOIP_DB": str(db)})
    assert region_warnings(gateway) == [], gateway.output()[-3000:]
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    assert chat(gateway, key, geoip.CRIMEA_IP).status_code == 403


def test_a_walk_ending_on_a_trusted_public_address_is_not_located(
    gateway_factory: GatewayFactory,
) -> None:
    """Every hop trusted (a public load balancer in GATEWAY_TRUSTED_PROXIES):
    the record said origin US, the proxy's country, for a client it never named."""
    gateway = gateway_factory(env={"GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32,8.8.8.0/24"})
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    response = chat(gateway, key, "8.8.8.8")
    assert response.status_code == 200, response.text  # the default bundle serves unknown
    record = admin.http.get(
        f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}"
    ).json()
    assert (record["client_ip"], record["origin_country"]) == ("8.8.8.8", None), record
    said = [line for line in gateway.output().splitlines() if "naming no client" in line]
    assert len(said) == 1 and "trusted proxy 8.8.8.8" in said[0], said
