"""The real server's /metrics and its JSON log lines (no secrets in them)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ops.helpers import (
    CHAT,
    TRUSTED,
    US_ENTERPRISE,
    US_PUBLIC,
    chat,
    metric,
    scrape,
)
from tests.support.processes import (
    ADMIN_TOKEN,
    Admin,
    GatewayConfig,
    Proc,
    start_gateway,
)

pytestmark = pytest.mark.e2e


@pytest.fixture()
def gateway(tmp_path: Path, standin: Proc) -> Iterator[Proc]:
    env = {**TRUSTED, "GATEWAY_LOG_LEVEL": "debug", "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "0"}
    proc = start_gateway(GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env))
    yield proc
    proc.stop()


def test_metrics_and_access_log_without_secrets(gateway: Proc) -> None:
    admin = Admin(gateway.url)
    enterprise = admin.customer_with_key(**US_ENTERPRISE)
    public = admin.customer_with_key(**US_PUBLIC)
    token = admin.http.post("/admin/v1/tokens", json={"role": "auditor", "name": "t"})
    assert token.status_code == 201, token.text
    admin_secret: str = token.json()["token"]
    key_id = enterprise.split("_")[1]
    wrong_secret = f"gk_{key_id}_{'x' * 40}"
    decision_ids: list[str] = []

    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for response in (
            chat(client, enterprise),
            chat(client, enterprise, stream=True),
            chat(client, enterprise, headers={"authorization": "", "x-api-key": enterprise}),
            chat(client, wrong_secret),
            chat(client, public, model="fable-5"),  # not offered on the public tier: 403
        ):
            decision_ids.append(response.headers["x-gateway-decision-id"])
        statuses = [chat(client, public).status_code for _ in range(21)]
        assert statuses.count(200) == 20 and statuses[-1] == 429

        # A paced stream is in flight while we scrape.
        slow = threading.Thread(
            target=chat, args=(gateway.url, enterprise),
            kwargs={"stream": True, "headers": {"x-standin-chunks": "20",
                                                "x-standin-interval-ms": "50"}},
        )  # fmt: skip
        slow.start()
        time.sleep(0.4)
        during = scrape(gateway.url)
        slow.join()
    after = scrape(gateway.url)

    assert metric(during, "gateway_inflight_streams") == 1
    assert metric(after, "gateway_inflight_streams") == 0
    assert metric(after, "gateway_requests_total", endpoint=CHAT, status="200") == 24
    assert metric(after, "gateway_requests_total", endpoint=CHAT, status="401") == 1
    assert metric(after, "gateway_requests_total", endpoint=CHAT, status="403") == 1
    assert metric(after, "gateway_requests_total", endpoint=CHAT, status="429") == 1
    assert metric(after, "gateway_decisions_total", decision="allow",
                  rule_id="tier-entitlement") == 24  # fmt: skip
    assert metric(after, "gateway_decisions_total", decision="deny",
                  rule_id="authentication-failed") == 1  # fmt: skip
    assert metric(after, "gateway_quota_refusals_total", capability="default",
                  kind="requests_per_minute") == 1  # fmt: skip
    assert metric(after, "gateway_audit_commit_seconds_count") == 24
    assert metric(after, "gateway_audit_batch_size_sum") >= 28  # every decision + outcomes
    assert metric(after, "gateway_upstream_response_seconds_count", endpoint=CHAT) == 24
    assert metric(after, "gateway_policy_reload_failures_total") == 0
    versions = [k for k in after if k[0] == "gateway_policy_version_info"]
    assert len(versions) == 1 and after[versions[0]] == 1

    assert gateway.stop() == 0
    lines = gateway.output().splitlines()
    docs = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(docs) == len(lines), "every log line is one JSON object"
    access = [d for d in docs if d["logger"] == "gateway.access"]
    assert len(access) == 27  # one per proxied request
    logged = {d["decision_id"]: d for d in access}
    for decision_id in decision_ids:
        assert decision_id in logged
    first = logged[decision_ids[0]]
    assert first["status"] == 200 and first["rule_ids"] == ["tier-entitlement"]
    assert first["key_id"] == key_id and first["customer_id"].startswith("cus_")
    assert first["latency_ms"] > 0
    assert logged[decision_ids[3]]["status"] == 401

    text = gateway.output()
    secrets = [
        enterprise.split("_", 2)[2], public.split("_", 2)[2], "x" * 40, ADMIN_TOKEN,
        "upstream-secret-key", "Hello",
        admin_secret.split("_", 2)[2],
    ]  # fmt: skip
    for secret in secrets:
        assert secret not in text, f"{secret[:6]}… appears in the gateway's log output"


def test_the_dashboard_queries_only_metrics_the_gateway_exports() -> None:
    """docs/grafana-dashboard.json must not drift from gateway/ops/metrics.py."""
    import re

    from prometheus_client import REGISTRY

    from gateway.ops import metrics  # noqa: F401 - registers the gateway's metrics

    # A family is named without its samples' suffixes (a counter ``x`` has
    # samples ``x_total``, a histogram ``x_bucket``/``x_sum``/``x_count``).
    families = {f.name for f in REGISTRY.collect()}
    dashboard = json.loads((Path(__file__).parents[2] / "docs/grafana-dashboard.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel.get("targets", [])
               for name in re.findall(r"\bgateway_[a-z_]+", target["expr"])}
    assert queried
    suffixes = ("_total", "_bucket", "_sum", "_count", "_info")
    missing = sorted(
        name for name in queried
        if name not in families
        and not any(name.endswith(s) and name[: -len(s)] in families for s in suffixes)
    )  # fmt: skip
    assert missing == [], missing


def test_health_checks_and_admin_reads_log_only_json_lines(gateway: Proc) -> None:
    """A log shipper parses stderr line by line: a library's warning printed
    raw (FastAPI deprecating the response class ``/readyz`` used, written by
    ``warnings`` on the load balancer's first probe) is two unparseable lines."""
    for _ in range(2):
        assert httpx.get(f"{gateway.url}/readyz", timeout=10).status_code in (200, 503)
        assert Admin(gateway.url).http.get("/admin/v1/policy").status_code == 200
    assert gateway.stop() == 0
    lines = gateway.output().splitlines()
    assert lines
    not_json = [line for line in lines if not line.startswith("{")]
    assert not_json == [], not_json
