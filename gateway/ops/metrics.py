"""Prometheus metrics and ``GET /metrics``.

The series are module-level ``prometheus_client`` objects, the library's own
convention (a registry is process state by nature). With ``gateway serve
--workers N`` the parent sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers
start (``prepare_multiprocess_dir``), each worker writes its values to mmap
files there, and a scrape of any worker aggregates all of them.

Label sets are bounded: endpoints are the fixed proxied routes (any other
path a client tries is ``unmatched``), rule ids come
from the reviewed policy bundle, statuses are HTTP codes, capabilities are
bundle names.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "gateway_requests",
    "Proxied requests answered, by endpoint and final HTTP status",
    ["endpoint", "status"],
)
DECISIONS = Counter(
    "gateway_decisions",
    "Decisions recorded, by result and rule id (one count per deciding rule)",
    ["decision", "rule_id"],
)
REPORT_MATCHES = Counter(
    "gateway_report_rule_matches",
    "Requests a report-mode rule matched, by rule id and the decision the request actually "
    "got (a report deny matching allowed requests counts what enforcing it would refuse)",
    ["rule_id", "decision"],
)
QUOTA_REFUSALS = Counter(
    "gateway_quota_refusals",
    "Requests refused with 429, by the capability bucket and limit kind that refused",
    ["capability", "kind"],
)
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds",
    "Time from request start to the last byte relayed (or the refusal sent)",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
AUDIT_WAIT_SECONDS = Histogram(
    "gateway_audit_commit_seconds",
    "Time a request waited for its decision record's group commit",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
AUDIT_BATCH_SIZE = Histogram(
    "gateway_audit_batch_size",
    "Records per committed audit batch (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
AUDIT_BATCH_FAILURES = Counter(
    "gateway_audit_batch_failures", "Audit batches that failed to commit"
)
AUDIT_CHECKPOINTS = Counter("gateway_audit_checkpoints", "Signed audit checkpoints written")
UPSTREAM_SECONDS = Histogram(
    "gateway_upstream_response_seconds",
    "Time from sending upstream to the upstream's response headers",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors",
    "Upstream calls that failed: unreachable, timeout, broke mid-answer, client gone",
    ["error"],
)
GEO_LOOKUP_ERRORS = Counter(
    "gateway_geo_lookup_errors",
    "Geolocation lookups that raised (the request's origin was taken as unknown)",
)
INFLIGHT_STREAMS = Gauge(
    "gateway_inflight_streams",
    "Streams being relayed now",
    multiprocess_mode="livesum",
)
POLICY_VERSION = Gauge(
    "gateway_policy_version_info",
    "1 for the policy bundle version in force (label), 0 for versions replaced",
    ["version"],
    multiprocess_mode="livemax",
)
POLICY_RELOADS = Counter(
    "gateway_policy_reloads", "Policy reload attempts by result", ["result"]
)
POLICY_RELOAD_FAILURES = Counter(
    "gateway_policy_reload_failures", "Policy reloads refused (invalid bundle, cannot audit)"
)
CLUSTER_MESSAGES = Counter(
    "gateway_cluster_messages",
    "Cache-invalidation and reload messages, by direction and kind",
    ["direction", "kind"],
)
CLUSTER_ERRORS = Counter(
    "gateway_cluster_errors",
    "Cluster-shared state failures (bus publish or connection, change-feed poll, "
    "shared admin lockout)",
    ["operation"],
)
CHANGE_FEED_ROWS = Counter(
    "gateway_change_feed_rows",
    "Admin changes applied from the change feed (admin_actions), by target type",
    ["target_type"],
)
DRAINING = Gauge(
    "gateway_draining",
    "1 while this process drains after SIGTERM",
    multiprocess_mode="livemax",
)


def policy_swapped(old: str | None, new: str) -> None:
    if old is not None and old != new:
        POLICY_VERSION.labels(old).set(0)
    POLICY_VERSION.labels(new).set(1)


def prepare_multiprocess_dir(directory: Path) -> None:
    """Point ``prometheus_client`` at a fresh, empty directory (before workers start).

    Stale files from an earlier run would add old counts to the new ones.
    """
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def mark_process_dead(pid: int) -> None:
    """Drop a finished worker's live gauges (counters of dead workers are kept)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def render() -> bytes:
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    # Unauthenticated like /healthz: bind the port to the scrape network only
    # (see docs/deploy.md); nothing here names a customer or a key.
    return Response(render(), media_type=CONTENT_TYPE_LATEST)
