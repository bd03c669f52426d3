"""Which .mmdb types are accepted, and what a lookup that raises becomes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from gateway.geo.locate import IPLocator, MmdbLookup
from gateway.geo.origin import Origin
from tests.support.geoip import (
    ASN_RECORDS,
    BAD_REGION_IP,
    CRIMEA_IP,
    RECORDS,
    REGISTERED_IR_IP,
    US_IP,
    WHOLE_CODE_IP,
    corrupt_data_section,
    write_mmdb,
)

pytest.importorskip("mmdb_writer")


def _lookup_errors() -> float:
    return REGISTRY.get_sample_value("gateway_geo_lookup_errors_total") or 0.0


@pytest.mark.parametrize("database_type", ["GeoLite2-ASN", "GeoIP2-ISP", "GeoIP2-Domain",
                                           "GeoIP2-Connection-Type", "GeoIP2-Anonymous-IP"])
def test_types_without_a_country_are_refused_when_opened(
    tmp_path: Path, database_type: str
) -> None:
    # They opened, then every lookup raised TypeError: a bare 500 per request.
    db = write_mmdb(tmp_path / "x.mmdb", database_type, ASN_RECORDS)
    with pytest.raises(ValueError, match=f"'{database_type}' database"):
        MmdbLookup(db)


@pytest.mark.parametrize("database_type", ["GeoIP2-Enterprise", "GeoIP2-City", "GeoLite2-City",
                                           "DBIP-Location (compat=City)"])
def test_types_with_subdivisions_give_regions(tmp_path: Path, database_type: str) -> None:
    lookup = MmdbLookup(write_mmdb(tmp_path / "x.mmdb", database_type, RECORDS))
    try:
        assert lookup(CRIMEA_IP) == ("UA", "UA-43")
        assert lookup(US_IP) == ("US", None)
        assert lookup("1.1.1.1") == (None, None)
    finally:
        lookup.close()


@pytest.mark.parametrize("database_type", ["GeoLite2-Country", "DBIP-Country-Lite"])
def test_country_types_give_countries(tmp_path: Path, database_type: str) -> None:
    lookup = MmdbLookup(write_mmdb(tmp_path / "x.mmdb", database_type, RECORDS))
    try:
        assert lookup(CRIMEA_IP) == ("UA", None)
    finally:
        lookup.close()


def test_a_lookup_that_raises_is_an_unknown_origin_logged_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = write_mmdb(tmp_path / "city.mmdb", "GeoIP2-City", RECORDS)
    corrupt_data_section(db)
    lookup = MmdbLookup(db)
    loc = IPLocator(lookup)
    before = _lookup_errors()
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.geo"):
            assert loc.locate(CRIMEA_IP, None) == Origin(CRIMEA_IP)
            assert loc.locate(US_IP, None) == Origin(US_IP)
            assert loc.locate(CRIMEA_IP, None) == Origin(CRIMEA_IP)  # tried again, not cached
    finally:
        lookup.close()
    lines = [r for r in caplog.records if "geolocation lookup failed" in r.getMessage()]
    assert len(lines) == 1 and CRIMEA_IP in lines[0].getMessage()
    assert _lookup_errors() - before == 3


def test_region_codes_are_normalised_and_checked() -> None:
    from gateway.geo.mmdb import region_code

    assert region_code("UA", "43") == "UA-43"
    assert region_code("UA", "UA-43") == "UA-43"  # was UA-UA-43: no rule ever matched it
    assert region_code("UA", " ua-43 ") == "UA-43"
    assert region_code("US", "ca") == "US-CA"
    assert region_code("UA", "99") is None
    assert region_code("UA", "UA-99") is None
    assert region_code("UA", "") is None


def test_a_city_database_gives_only_iso_regions(tmp_path: Path) -> None:
    lookup = MmdbLookup(write_mmdb(tmp_path / "city.mmdb", "GeoIP2-City", RECORDS))
    try:
        assert lookup(WHOLE_CODE_IP) == ("UA", "UA-43")
        assert lookup(BAD_REGION_IP) == ("UA", None)  # the country stays
        assert lookup(REGISTERED_IR_IP) == ("IR", None)
    finally:
        lookup.close()
