"""A rule staged in report mode, then enforced, through the real server and SDKs.

The compliance officer's flow: draft an emergency directive as a report rule,
watch the live decision log for the requests it would deny (the clients notice
nothing), then switch it to enforce and reload.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e

RULE = "draft-haiku-freeze"
DRAFT = f"""
  - id: {RULE}
    effect: deny
    mode: report
    when: {{model_in: [haiku-lite]}}
    reason: Draft emergency directive - haiku-lite frozen.
"""
XFF = {"x-forwarded-for": US_IP}
MESSAGES = [{"role": "user", "content": "hi"}]


def _no_trace(headers: httpx.Headers, body: str) -> None:
    """Neither the rule id, its reason nor the notion of a report leaks to the client."""
    for name, value in headers.items():
        for text in (name, value):
            assert RULE not in text and "report" not in text.lower(), (name, value)
    assert RULE not in body and "emergency" not in body.lower() and "report_" not in body


def _record(admin: Admin, decision_id: str) -> dict[str, object]:
    response = admin.http.get(f"/admin/v1/decisions/{decision_id}")
    assert response.status_code == 200, response.text
    record: dict[str, object] = response.json()
    return record


def _reload(admin: Admin) -> str:
    response = admin.http.post("/admin/v1/policy/reload")
    assert response.status_code == 200, response.text
    version: str = response.json()["version"]
    return version


def test_a_report_rule_is_logged_not_enforced_until_switched(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    rules = bundle / "rules.yaml"
    rules.write_text(rules.read_text() + DRAFT)
    gateway: Proc = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle),
                                         "GATEWAY_POLICY_WATCH": "false"})
    admin = Admin(gateway.url)
    assert admin.http.get("/admin/v1/policy").json()["report_rules"] == [RULE]
    key = admin.customer_with_key(**US_ENTERPRISE)
    oa = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, default_headers=XFF,
                       max_retries=0)
    an = anthropic.Anthropic(base_url=gateway.url, api_key=key, default_headers=XFF,
                             max_retries=0)

    # Staged: both SDKs are served as before, with no trace of the rule.
    raw = oa.chat.completions.with_raw_response.create(model="haiku-lite", messages=MESSAGES)
    assert raw.http_response.status_code == 200
    _no_trace(raw.http_response.headers, raw.http_response.text)
    assert raw.parse().choices[0].message.content
    araw = an.messages.with_raw_response.create(model="haiku-lite", max_tokens=16,
                                                messages=MESSAGES)  # type: ignore[arg-type]
    assert araw.http_response.status_code == 200
    _no_trace(araw.http_response.headers, araw.http_response.text)
    # A report deny hides no model from the listing.
    assert "haiku-lite" in {m.id for m in oa.models.list()}

    # The decision log says what the draft would have done.
    ids = [raw.http_response.headers["x-gateway-decision-id"],
           araw.http_response.headers["x-gateway-decision-id"]]
    for decision_id in ids:
        record = _record(admin, decision_id)
        assert (record["decision"], record["status"]) == ("allow", 200)
        assert record["rule_ids"] == ["tier-entitlement"]
        assert record["report_rule_ids"] == [RULE]
        assert record["report_reasons"] == ["Draft emergency directive - haiku-lite frozen."]
    listed = admin.http.get("/admin/v1/decisions", params={"report_rule_id": RULE}).json()
    assert [i["id"] for i in listed["items"]] == ids
    assert admin.http.get("/admin/v1/decisions", params={"rule_id": RULE}).json()["items"] == []
    metrics = httpx.get(f"{gateway.url}/metrics").text
    match = re.search(r'gateway_report_rule_matches_total\{decision="allow",rule_id="'
                      + RULE + r'"\} (\d+)', metrics)
    assert match is not None and float(match.group(1)) == 2, metrics[-2000:]

    # Switched to enforce and reloaded: the same request is refused with the rule id.
    rules.write_text(rules.read_text().replace("    mode: report\n", ""))
    _reload(admin)
    assert admin.http.get("/admin/v1/policy").json()["report_rules"] == []
    with pytest.raises(openai.PermissionDeniedError) as denied:
        oa.chat.completions.create(model="haiku-lite", messages=MESSAGES)
    assert denied.value.status_code == 403
    body = denied.value.response.json()
    assert body["error"]["code"] == RULE and body["error"]["type"] == "permission_denied"
    with pytest.raises(anthropic.PermissionDeniedError) as adenied:
        an.messages.create(model="haiku-lite", max_tokens=16,
                           messages=MESSAGES)  # type: ignore[arg-type]
    assert adenied.value.response.json()["error"]["type"] == "permission_error"
    refused = _record(admin, denied.value.response.headers["x-gateway-decision-id"])
    assert (refused["decision"], refused["status"]) == ("deny", 403)
    assert refused["rule_ids"] == [RULE] and refused["report_rule_ids"] == []
    # The whole log, old allows and new denies, still verifies.
    assert admin.http.get("/admin/v1/audit/verify").json()["ok"] is True
