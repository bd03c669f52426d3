"""``POST /admin/v1/policy/impact`` with the CLI's other sources: ``against``
(``--against DIR``: the bundle ``"customers": true`` compares with, as files,
or ``against_version``: a bundle the audit log keeps, by version) and
``records`` (``--from-jsonl``: decision records posted for replay, bounded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.e2e.test_policy_reports_http import WITHDRAW_HAIKU, _bundle
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

MAX_RECORDS = 20_000
"""``gateway.admin.policy_impact_sources.MAX_RECORDS``."""


def _impact(admin: Admin, **body: Any) -> httpx.Response:
    return admin.http.post("/admin/v1/policy/impact", json=body, timeout=60)


def test_customers_impact_compares_with_posted_files(gateway: Proc, admin: Admin) -> None:
    created = admin.customer(**US_ENTERPRISE)
    withdrawn = _bundle(WITHDRAW_HAIKU)
    # Against the bundle in force (the default): haiku-lite is cut.
    default = _impact(admin, files=withdrawn, customers=True)
    assert default.status_code == 200 and default.json()["cut_customers"] == 1, default.text
    # Against a bundle that already withdrew it: the candidate changes nothing
    # (a second directive reviewed against the first, not yet deployed).
    answer = _impact(admin, files=withdrawn, customers=True, against=withdrawn)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["against"] == doc["candidate"] != default.json()["against"], doc
    assert (doc["cut_customers"], doc["granted_customers"]) == (0, 0), doc
    # And the other way round: the bundle in force, against the withdrawal, grants it.
    back = _impact(admin, files=_bundle(), customers=True, against=withdrawn).json()
    granted = [(c["customer_id"], c["model"]) for c in back["granted"]]
    assert granted == [(created["id"], "haiku-lite")], back
    broken = _impact(admin, files=withdrawn, customers=True, against={"rules.yaml": "rules: [\n"})
    assert broken.status_code == 422, broken.text
    assert "against: rules.yaml:2: YAML syntax error" in broken.json()["detail"][0], broken.text


def test_customers_impact_compares_with_a_logged_version(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """The bundle a reload replaced is still in the log (its ``policy_reload``
    record carries the text): a rollback candidate is judged against it by
    version, with no copy of its files at hand."""
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    for name, text in _bundle(WITHDRAW_HAIKU).items():
        (policy_dir / name).write_text(text)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(policy_dir)})
    admin = Admin(gateway.url)
    created = admin.customer(**US_ENTERPRISE)
    withdrawn = admin.http.get("/admin/v1/policy").json()["version"]
    (policy_dir / "rules.yaml").write_text(_bundle()["rules.yaml"])
    reloaded = admin.http.post("/admin/v1/policy/reload")
    assert reloaded.status_code == 200 and reloaded.json()["version"] != withdrawn, reloaded.text

    for named in (withdrawn, withdrawn[:12]):
        answer = _impact(admin, files=_bundle(), customers=True, against_version=named)
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        assert doc["against"] == withdrawn, doc
        assert [c["customer_id"] for c in doc["granted"]] == [created["id"]], doc
    unknown = _impact(admin, files=_bundle(), customers=True, against_version="0" * 64)
    assert unknown.status_code == 422, unknown.text
    assert "against_version" in unknown.json()["detail"], unknown.text
    both = _impact(admin, files=_bundle(), customers=True, against_version=withdrawn,
                   against=_bundle())  # fmt: skip
    assert both.status_code == 422, both.text
    alone = _impact(admin, files=_bundle(), against_version=withdrawn)  # a log replay
    assert alone.status_code == 422, alone.text


def _exported(gateway: Proc, admin: Admin) -> list[dict[str, Any]]:
    key = admin.customer_with_key(**US_ENTERPRISE)
    sent = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10, json={
        "model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": US_IP})  # fmt: skip
    assert sent.status_code == 200, sent.text
    export = admin.http.get("/admin/v1/decisions/export", params={"format": "jsonl"})
    assert export.status_code == 200, export.text
    return [json.loads(line) for line in export.text.splitlines() if line.strip()]


def test_impact_replays_posted_records(gateway_factory: GatewayFactory, tmp_path: Path) -> None:
    """Another gateway's export, replayed here: this gateway's own log has no
    decision, the posted lines (manifest and outcomes included, as the file
    holds them) have one."""
    source = gateway_factory()
    lines = _exported(source, Admin(source.url))
    assert any(line.get("kind") == "manifest" for line in lines), lines
    (tmp_path / "other").mkdir()
    gateway = gateway_factory(tmp=tmp_path / "other")
    admin = Admin(gateway.url)

    own = _impact(admin, files=_bundle(WITHDRAW_HAIKU), since="1h").json()
    assert own["total"] == 0, own
    posted = _impact(admin, files=_bundle(WITHDRAW_HAIKU), since="1h", records=lines)
    assert posted.status_code == 200, posted.text
    doc = posted.json()
    assert (doc["total"], doc["to_deny"], doc["by_rule"]) == (1, 1, {"withdraw-haiku": 1}), doc
    assert doc["source"] == "records", doc
    # `since` applies to posted records too, as to --from-jsonl's.
    aged = [dict(line, ts="2020-01-01T00:00:00Z") if "ts" in line else line for line in lines]
    old = _impact(admin, files=_bundle(WITHDRAW_HAIKU), since="1h", records=aged).json()
    assert old["total"] == 0, old

    too_many = _impact(admin, files=_bundle(), records=[{}] * (MAX_RECORDS + 1))
    assert too_many.status_code == 422, too_many.text[:300]
    with_customers = _impact(admin, files=_bundle(), customers=True, records=lines)
    assert with_customers.status_code == 422, with_customers.text
