"""What the request corridor reports: metrics and the one access-log line.

``gateway/proxy`` calls these at the end of a request (``refused`` from the
pipeline, ``finished`` from the forwarder's settle step) and around the
upstream call and stream relay. They only touch ``prometheus_client`` objects
and, when INFO is enabled on ``gateway.access``, log one JSON line: decision
id, customer and key id, endpoint, model, status, rule ids (and report-mode
matches), latency. Never the prompt, never a credential (the key *id* is the public half of a key).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from gateway.ops import metrics as m
from gateway.proxy.batch_routes import BATCH_ENDPOINTS
from gateway.proxy.paths import ROUTES
from gateway.proxy.stored_routes import STORED_ENDPOINTS

UNMATCHED = "unmatched"

if TYPE_CHECKING:
    from gateway.proxy.exchange import Exchange

access_log = logging.getLogger("gateway.access")

# Labelled children, looked up once per label set: ``labels()`` hashes and
# locks on every call, which adds up at thousands of requests a second.
_children: dict[tuple[object, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def audit_waited(seconds: float) -> None:
    m.AUDIT_WAIT_SECONDS.observe(seconds)


def upstream_answered(endpoint: str, seconds: float) -> None:
    _child(m.UPSTREAM_SECONDS, endpoint).observe(seconds)


def stream_started() -> None:
    m.INFLIGHT_STREAMS.inc()


def stream_ended() -> None:
    m.INFLIGHT_STREAMS.dec()


def refused(ex: Exchange, status: int) -> None:
    """A request answered with a refusal (401/400/403/429/503), already recorded."""
    rule_ids = ex.rule_ids or (list(ex.decision.rule_ids) if ex.decision else [])
    if status == 429 and ex.admission is not None and ex.admission.refused_by is not None:
        limit = ex.admission.refused_by
        _child(m.QUOTA_REFUSALS, limit.capability, limit.kind).inc()
    _count(ex, status, "deny", rule_ids)
    _log(ex, status, "deny", rule_ids, None, None)


def finished(
    ex: Exchange,
    status: int | None,
    error: str | None,
    tokens: tuple[int | None, int | None] | None,
) -> None:
    """An allowed request is over: relayed, failed upstream, the client left, or
    answered by the gateway itself (the model list: no tokens)."""
    rule_ids = ex.rule_ids or (list(ex.decision.rule_ids) if ex.decision else [])
    if error is not None:
        _child(m.UPSTREAM_ERRORS, error.partition(":")[0]).inc()
    _count(ex, status or 499, "allow", rule_ids)
    _log(ex, status, "allow", rule_ids, error, tokens)


def _count(ex: Exchange, status: int, decision: str, rule_ids: list[str]) -> None:
    endpoint = endpoint_label(ex.endpoint)
    _child(m.REQUESTS, endpoint, str(status)).inc()
    for rule_id in rule_ids or ("none",):
        _child(m.DECISIONS, decision, rule_id).inc()
    if ex.decision is not None:
        # Report-mode rules come from the reviewed bundle: bounded labels, like rule_id.
        for rule_id in ex.decision.report_rule_ids:
            _child(m.REPORT_MATCHES, rule_id, decision).inc()
    _child(m.REQUEST_SECONDS, endpoint).observe(time.perf_counter() - ex.started)


def endpoint_label(path: str) -> str:
    """A route, or ``unmatched``: a probe of random paths must not create a
    series (and a cached child here) per path. The path itself is in the
    decision record and the access-log line."""
    if path in ROUTES or path in STORED_ENDPOINTS or path in BATCH_ENDPOINTS:
        return path
    return UNMATCHED


def _log(
    ex: Exchange,
    status: int | None,
    decision: str,
    rule_ids: list[str],
    error: str | None,
    tokens: tuple[int | None, int | None] | None,
) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    principal = ex.principal
    fields: dict[str, Any] = {
        "decision_id": ex.id,
        "customer_id": principal.customer_id if principal else None,
        "key_id": principal.key_id if principal else ex.key_id,
        "endpoint": ex.endpoint,
        "model": ex.body.model if ex.body else None,
        "decision": decision,
        "status": status,
        "rule_ids": rule_ids,
        "policy_version": ex.policy_version,
        "origin": ex.origin.country if ex.origin else None,
        "latency_ms": round((time.perf_counter() - ex.started) * 1000, 2),
    }
    if error is not None:
        fields["error"] = error
    if ex.decision is not None and ex.decision.report_rule_ids:
        fields["report_rule_ids"] = list(ex.decision.report_rule_ids)
    if tokens is not None:
        fields["tokens_in"], fields["tokens_out"] = tokens
    access_log.info("request", extra={"fields": fields})
