"""The default policy bundle, enforced by the real server (issue 4 acceptance)."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e

# Addresses the offline RIR data (iptocc) registers in each country.
KP_IP, IR_IP, CU_IP, DE_IP = "175.45.176.1", "78.38.0.1", "152.206.0.1", "91.98.0.1"


def chat(gateway: Proc, key: str, model: str, ip: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": ip},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def person(**fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "name": "Test Person",
        "kind": "individual",
        "kyc_level": "kyb_verified",
        "tier": "enterprise",
        "citizenships": ["US"],
        "residence": "US",
    }
    record.update(fields)
    return record


def test_sanctioned_origins_are_refused_with_the_rule_id(
    gateway: Proc, enterprise_key: str
) -> None:
    for ip in (KP_IP, IR_IP, CU_IP):
        response = chat(gateway, enterprise_key, "haiku-lite", ip)
        assert response.status_code == 403, (ip, response.text)
        error = response.json()["error"]
        assert error["type"] == "permission_denied"
        assert error["code"] == "sanctioned-origin"
    # The same caller from the US is served.
    assert chat(gateway, enterprise_key, "haiku-lite", US_IP).status_code == 200


def test_untrusted_peer_cannot_spoof_its_origin(gateway_factory: GatewayFactory) -> None:
    # No trusted proxies: X-Forwarded-For is ignored, so claiming a US address
    # from loopback does not make the origin US (and a KP claim does not block).
    gateway = gateway_factory(env={"GATEWAY_TRUSTED_PROXIES": ""})
    key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
    assert chat(gateway, key, "haiku-lite", KP_IP).status_code == 200


def test_ownership_from_country_of_concern_is_refused(gateway: Proc, admin: Admin) -> None:
    key = admin.customer_with_key(
        **{
            **US_ENTERPRISE,
            "name": "Harbor Logistics Ltd",
            "ownership": [{"country": "CN", "percent": 60}, {"country": "US", "percent": 40}],
        }
    )
    response = chat(gateway, key, "haiku-lite", US_IP)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "controlled-by-country-of-concern"


def test_directive_is_by_citizenship_not_location(gateway: Proc, admin: Admin) -> None:
    german = admin.customer_with_key(
        **person(name="Greta Example", citizenships=["DE"], residence="DE")
    )
    dual = admin.customer_with_key(**person(name="Wei Example", citizenships=["US", "CN"]))
    resident = admin.customer_with_key(
        **person(name="Ana Example", citizenships=["MX"], attributes=["us_permanent_resident"])
    )
    denied = chat(gateway, german, "fable-5", US_IP)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "directive-frontier-us-persons-only"
    # The German customer keeps the non-frontier model.
    assert chat(gateway, german, "haiku-lite", DE_IP).status_code == 200
    assert chat(gateway, dual, "fable-5", US_IP).status_code == 200
    assert chat(gateway, resident, "fable-5", US_IP).status_code == 200


def test_several_deny_reasons_read_as_sentences(gateway: Proc, admin: Admin) -> None:
    key = admin.customer_with_key(**person(name="Iman Example", citizenships=["IR"],
                                           residence="IR"))  # fmt: skip
    response = chat(gateway, key, "haiku-lite", IR_IP)
    assert response.status_code == 403, response.text
    message = response.json()["error"]["message"]
    assert ".;" not in message and "permitted. " in message, message
    assert response.json()["error"]["code"] == "sanctioned-origin"


def test_resident_of_a_sanctioned_region_is_refused(gateway: Proc, admin: Admin) -> None:
    # Crimea is a region of UA, not a country: the record must be able to say
    # so, or the resident is stored as UA and served from anywhere.
    key = admin.customer_with_key(
        **person(name="Oksana Example", citizenships=["UA"], residence="UA-43")
    )
    response = chat(gateway, key, "haiku-lite", DE_IP)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "sanctioned-residence"
    record = admin.http.get(f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}")
    assert record.status_code == 200, record.text
    assert record.json()["residence"] == "UA-43"
    assert record.json()["rule_ids"] == ["sanctioned-residence"]
    # A Kyiv resident (UA-30) is served.
    kyiv = admin.customer_with_key(
        **person(name="Taras Example", citizenships=["UA"], residence="UA-30")
    )
    assert chat(gateway, kyiv, "haiku-lite", DE_IP).status_code == 200


def test_organization_incorporated_in_a_sanctioned_jurisdiction_is_refused(
    gateway: Proc, admin: Admin
) -> None:
    # An Iranian or Cuban company is as much "in" the embargoed country as a
    # resident is; KYB records it as incorporated_in, often with no residence,
    # and calling from a US or German address must not make it servable.
    for country, ip in (("IR", US_IP), ("CU", DE_IP), ("KP", US_IP)):
        key = admin.customer_with_key(
            **{
                **US_ENTERPRISE,
                "name": f"Embargoed Trading {country} Co",
                "incorporated_in": country,
                "residence": None,
                "ownership": [],
            }
        )
        response = chat(gateway, key, "haiku-lite", ip)
        assert response.status_code == 403, (country, response.text)
        assert response.json()["error"]["code"] == "sanctioned-incorporation", response.text
        record = admin.http.get(f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}")
        assert record.json()["rule_ids"] == ["sanctioned-incorporation"]
        assert record.json()["facts"]["principal"]["incorporated_in"] == country
    # A company incorporated in Germany is served.
    german = admin.customer_with_key(
        **{**US_ENTERPRISE, "name": "Rhein Widgets GmbH", "incorporated_in": "DE"}
    )
    assert chat(gateway, german, "haiku-lite", DE_IP).status_code == 200


def test_the_record_says_why_a_customer_was_served_below_its_tier(
    gateway: Proc, admin: Admin
) -> None:
    # An auditor reading a default-deny at tier public for an enterprise
    # customer must see why it was not served as enterprise, from the record.
    expired_at = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    expired = admin.customer_with_key(
        **person(name="Lapsed Example", kyc_expires_at=expired_at.isoformat())
    )
    response = chat(gateway, expired, "fable-5", US_IP)
    assert response.status_code == 403, response.text
    record = admin.http.get(f"/admin/v1/decisions/{response.headers['x-gateway-decision-id']}")
    body = record.json()
    assert (body["effective_tier"], body["rule_ids"]) == ("public", ["default-deny"])
    assert body["facts"].get("tier_demotion") == (
        f"KYC expired at {expired_at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    ), body["facts"]
    # An allow at the lower tier says so too; one at the assigned tier says nothing.
    flagged = admin.customer_with_key(**person(name="Flagged Example",
                                               sanctions_status="potential_match"))  # fmt: skip
    allowed = chat(gateway, flagged, "haiku-lite", US_IP)
    assert allowed.status_code == 200, allowed.text
    record = admin.http.get(f"/admin/v1/decisions/{allowed.headers['x-gateway-decision-id']}")
    assert record.json()["facts"].get("tier_demotion") == (
        "sanctions screening status is potential_match"
    )
    served = admin.customer_with_key(**person(name="Current Example"))
    ok = chat(gateway, served, "haiku-lite", US_IP)
    record = admin.http.get(f"/admin/v1/decisions/{ok.headers['x-gateway-decision-id']}")
    assert record.json()["effective_tier"] == "enterprise"
    assert "tier_demotion" not in record.json()["facts"]


def test_models_list_shows_only_what_the_caller_may_use(gateway: Proc, admin: Admin) -> None:
    public = admin.customer_with_key(
        **person(name="Pat Public", tier="public", kyc_level="email_verified")
    )
    german = admin.customer_with_key(
        **person(name="Greta Example", citizenships=["DE"], residence="DE")
    )
    for key, expected in ((public, {"haiku-lite"}), (german, {"haiku-lite"})):
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        assert {m.id for m in client.models.list()} == expected
    us = admin.customer_with_key(**person(name="Sam Citizen"))
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=us, max_retries=0)
    assert {m.id for m in client.models.list()} == {"haiku-lite", "fable-5"}
    # A suspended account is refused, as its requests are, not listed nothing
    # under an "allow" record.
    suspended = admin.customer(**person(name="Sue Spended"))
    key = admin.key(str(suspended["id"]))
    patched = admin.http.patch(f"/admin/v1/customers/{suspended['id']}",
                               json={"status": "suspended"})
    assert patched.status_code == 200, patched.text
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.models.list()
    assert refused.value.body["code"] == "customer-suspended"  # type: ignore[index]
    decision_id = refused.value.response.headers["x-gateway-decision-id"]
    record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    assert (record["decision"], record["rule_ids"]) == ("deny", ["customer-suspended"])


def test_policy_edit_on_disk_applies_without_restart_and_broken_edit_is_refused(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    admin = Admin(gateway.url)
    key = admin.customer_with_key(**US_ENTERPRISE)
    assert chat(gateway, key, "haiku-lite", US_IP).status_code == 200
    version_before = admin.http.get("/admin/v1/policy").json()["version"]

    rules = bundle / "rules.yaml"
    original = rules.read_text()
    directive = (
        "\n  - id: emergency-haiku-freeze\n    effect: deny\n"
        "    when: {model_in: [haiku-lite]}\n    reason: Frozen by emergency directive.\n"
    )
    rules.write_text(original + directive)
    deadline = time.monotonic() + 2.0
    status = 200
    while time.monotonic() < deadline and status == 200:
        time.sleep(0.1)
        status = chat(gateway, key, "haiku-lite", US_IP).status_code
    assert status == 403, "edited policy not in force within 2 s"
    response = chat(gateway, key, "haiku-lite", US_IP)
    assert response.json()["error"]["code"] == "emergency-haiku-freeze"
    version_after = response.headers["x-gateway-policy-version"]
    assert version_after != version_before

    # A broken edit is refused whole: decisions stay, the refusal is visible.
    rules.write_text(original + directive + "\n  - id: broken\n    effect: maybe\n")
    time.sleep(1.5)
    response = chat(gateway, key, "haiku-lite", US_IP)
    assert response.status_code == 403
    assert response.headers["x-gateway-policy-version"] == version_after
    policy = admin.http.get("/admin/v1/policy").json()
    assert policy["version"] == version_after
    assert policy["last_refused"] is not None
    assert "rules.yaml" in str(policy["last_refused"])
    # ...and the audit log says so too: an auditor asking later why the
    # directive's second edit never applied finds the refusal, its errors and
    # the version kept, in the signed chain beside the decisions.
    time.sleep(0.2)  # records nobody waits on are flushed within ~50 ms
    export = admin.http.get("/admin/v1/decisions/export").text.splitlines()
    kinds = [orjson.loads(line) for line in export]
    refused = [r for r in kinds if r["kind"] == "policy_refused"]
    assert refused, [r["kind"] for r in kinds]
    payload = refused[-1]["payload"]
    assert payload["kept_version"] == version_after
    assert any("rules.yaml" in error for error in payload["errors"]), payload
    assert admin.http.get("/admin/v1/audit/verify").json()["ok"] is True


def test_policy_times_are_rfc3339_utc_with_z_like_every_admin_time(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle),
                                   "GATEWAY_POLICY_WATCH": "false"})  # fmt: skip
    admin = Admin(gateway.url)
    created_at = admin.customer(**US_ENTERPRISE)["created_at"]
    assert str(created_at).endswith("Z"), created_at  # how the other admin times look
    loaded_at = admin.http.get("/admin/v1/policy").json()["loaded_at"]
    assert loaded_at.endswith("Z") and "+00:00" not in loaded_at, loaded_at
    assert datetime.fromisoformat(loaded_at).utcoffset() == timedelta(0)
    (bundle / "rules.yaml").write_text("rules:\n  - id: broken\n    effect: maybe\n")
    assert admin.http.post("/admin/v1/policy/reload").status_code == 422
    refused_at = admin.http.get("/admin/v1/policy").json()["last_refused"]["at"]
    assert refused_at.endswith("Z") and "+00:00" not in refused_at, refused_at
