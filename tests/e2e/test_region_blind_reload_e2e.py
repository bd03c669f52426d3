"""Region rules that the geolocation cannot give, brought in after start-up.

Start-up warns when the bundle's origin rules name regions (Crimea, UA-43)
and the geolocation gives countries only (``test_region_blind_e2e``). A
reload that added them, by ``POST /admin/v1/policy/reload`` or by the file
watch, said nothing: not in the log, not in the answer. The officer who
added Crimea to a group believed it refused. Now each such bundle is said to
be region-blind in the log and in ``deployment_warnings`` (reload, validate,
``GET /policy``), and ``gateway policy validate --check-geolocation`` says it
before the bundle ships; ``warnings`` and the status stay as they were.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from tests.e2e.conftest import GatewayFactory
from tests.e2e.test_region_blind_e2e import region_warnings
from tests.support import geoip
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e
REGIONS = "    regions: [UA-43, UA-40, UA-14, UA-09]\n"
"""The default bundle's comprehensively_sanctioned regions (policies/jurisdictions.yaml)."""


def _without_regions(directory: Path) -> Path:
    """The default bundle with its only region rules taken out."""
    shutil.copytree(REPO / "policies", directory)
    groups = directory / "jurisdictions.yaml"
    text = groups.read_text()
    assert text.count(REGIONS) == 1, "policies/jurisdictions.yaml changed: update REGIONS"
    groups.write_text(text.replace(REGIONS, ""))
    return directory


def _add_regions(directory: Path) -> None:
    shutil.copy(REPO / "policies" / "jurisdictions.yaml", directory / "jurisdictions.yaml")


def _says_regions(warnings: list[str], source: str) -> bool:
    return (len(warnings) == 1 and "UA-09, UA-14, UA-40, UA-43" in warnings[0]
            and source in warnings[0] and "GATEWAY_GEOIP_DB" in warnings[0])  # fmt: skip


def _wait_for_log(gateway: Proc, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while len(said := region_warnings(gateway)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return said


def test_a_reload_that_adds_region_rules_says_they_cannot_fire(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = _without_regions(tmp_path / "live")
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live),
                                   "GATEWAY_POLICY_WATCH": "false"})  # fmt: skip
    admin = Admin(gateway.url)
    assert region_warnings(gateway) == [], gateway.output()[-3000:]
    before = admin.http.get("/admin/v1/policy").json()
    assert before.get("deployment_warnings", []) == [], before

    _add_regions(live)
    reloaded = admin.http.post("/admin/v1/policy/reload")
    assert reloaded.status_code == 200, reloaded.text
    said = _wait_for_log(gateway, 1)
    assert len(said) == 1 and '"warning"' in said[0], gateway.output()[-3000:]
    assert "UA-09, UA-14, UA-40, UA-43" in said[0] and "iptocc" in said[0], said
    body = reloaded.json()
    assert body["ok"] is True and body["version"] != before["version"], body
    assert body["warnings"] == [], body  # the files' own warnings: unchanged
    assert _says_regions(body["deployment_warnings"], "iptocc"), body
    policy = admin.http.get("/admin/v1/policy").json()
    assert _says_regions(policy["deployment_warnings"], "iptocc"), policy
    assert policy["warnings"] == [], policy

    # The same files again: nothing swapped, nothing logged, the answer still says it.
    again = admin.http.post("/admin/v1/policy/reload")
    assert again.status_code == 200 and again.json()["version"] == body["version"], again.text
    assert _says_regions(again.json()["deployment_warnings"], "iptocc"), again.text
    assert len(region_warnings(gateway)) == 1


def test_a_watched_edit_that_adds_region_rules_is_logged(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = _without_regions(tmp_path / "live")
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live)})
    admin = Admin(gateway.url)
    version = admin.http.get("/admin/v1/policy").json()["version"]
    _add_regions(live)
    deadline = time.monotonic() + 30
    while (policy := admin.http.get("/admin/v1/policy").json())["version"] == version:
        assert time.monotonic() < deadline, "the edit was not loaded"
        time.sleep(0.2)
    said = _wait_for_log(gateway, 1)
    assert len(said) == 1 and "iptocc" in said[0], gateway.output()[-3000:]
    assert _says_regions(policy["deployment_warnings"], "iptocc"), policy


def _bundle_files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.glob("*.yaml"))}


def test_validate_says_it_of_a_candidate_on_a_country_only_gateway(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    gateway = gateway_factory()
    admin = Admin(gateway.url)
    with_regions = admin.http.post("/admin/v1/policy/validate",
                                   json={"files": _bundle_files(REPO / "policies")})  # fmt: skip
    assert with_regions.status_code == 200, with_regions.text
    body = with_regions.json()
    assert body["ok"] is True and body["warnings"] == [], body
    assert _says_regions(body["deployment_warnings"], "iptocc"), body
    plain = _bundle_files(_without_regions(tmp_path / "plain"))
    without = admin.http.post("/admin/v1/policy/validate", json={"files": plain}).json()
    assert without["ok"] is True and without["deployment_warnings"] == [], without


def test_a_country_database_is_named_and_a_city_database_is_not_warned_about(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    pytest.importorskip("mmdb_writer")
    files = {"files": _bundle_files(REPO / "policies")}
    for kind, blind in (("GeoLite2-Country", True), ("GeoIP2-City", False)):
        db = geoip.write_mmdb(tmp_path / f"{kind}.mmdb", kind, geoip.RECORDS)
        live = _without_regions(tmp_path / f"live-{kind}")
        gateway = gateway_factory(env={"GATEWAY_GEOIP_DB": str(db),
                                       "GATEWAY_POLICY_DIR": str(live),
                                       "GATEWAY_POLICY_WATCH": "false"})  # fmt: skip
        admin = Admin(gateway.url)
        validated = admin.http.post("/admin/v1/policy/validate", json=files).json()
        if blind:
            assert _says_regions(validated["deployment_warnings"], "GeoLite2-Country"), validated
        else:
            assert validated["deployment_warnings"] == [], validated
        _add_regions(live)
        reloaded = admin.http.post("/admin/v1/policy/reload")
        assert reloaded.status_code == 200, reloaded.text
        assert bool(reloaded.json()["deployment_warnings"]) is blind, reloaded.text
        gateway.stop()
        assert len(region_warnings(gateway)) == int(blind), gateway.output()[-3000:]


def test_cli_validate_checks_the_configured_geolocation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner = CliRunner()
    policies = str(REPO / "policies")
    monkeypatch.delenv("GATEWAY_GEOIP_DB", raising=False)
    plain = runner.invoke(app, ["policy", "validate", policies])
    assert plain.exit_code == 0 and "origin rules name regions" not in plain.output, plain.output
    checked = runner.invoke(app, ["policy", "validate", policies, "--check-geolocation"])
    assert checked.exit_code == 0, checked.output  # a warning, never a failure
    out = " ".join(checked.output.split())
    assert "warning: the policy's origin rules name regions (UA-09, UA-14, UA-40, UA-43)" in out
    assert "geolocation: offline RIR data (iptocc) gives countries only" in out, out
    pytest.importorskip("mmdb_writer")
    city = geoip.write_mmdb(tmp_path / "city.mmdb", "GeoIP2-City", geoip.RECORDS)
    monkeypatch.setenv("GATEWAY_GEOIP_DB", str(city))
    regional = runner.invoke(app, ["policy", "validate", policies, "--check-geolocation"])
    assert regional.exit_code == 0, regional.output
    assert "origin rules name regions" not in regional.output, regional.output
    assert "gives countries and regions" in regional.output, regional.output
    monkeypatch.setenv("GATEWAY_GEOIP_DB", str(tmp_path / "missing.mmdb"))
    missing = runner.invoke(app, ["policy", "validate", policies, "--check-geolocation"])
    assert missing.exit_code == 2, missing.output
