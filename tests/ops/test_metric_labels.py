"""Metric label sets stay bounded whatever paths clients probe."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from gateway.ops import hooks
from gateway.ops import metrics as m
from gateway.proxy.exchange import Exchange


def _refused(endpoint: str) -> None:
    bundle = cast(Any, SimpleNamespace(version="v" * 64))
    ex = Exchange(api="openai", endpoint=endpoint, ts=datetime.now(UTC), peer_ip="192.0.2.1",
                  bundle=bundle)  # fmt: skip
    ex.refuse("no-such-route", "no such route")
    hooks.refused(ex, 404)


def _endpoints() -> set[str]:
    return {sample.labels["endpoint"] for family in (m.REQUESTS, m.REQUEST_SECONDS)
            for metric in family.collect() for sample in metric.samples}  # fmt: skip


def test_unknown_paths_share_one_endpoint_label() -> None:
    """Each refused path is in its audit record and access-log line; as a metric
    label it would be a new series per probe (memory, and a scrape that grows
    without bound), so every path that is not a route counts as ``unmatched``."""
    for i in range(20):
        _refused(f"/v1/probe-{i}")
    _refused("/V1/chat/completions")
    _refused("/v1/chat/completions")
    endpoints = _endpoints()
    assert not {e for e in endpoints if "probe" in e or e.startswith("/V1")}, endpoints
    assert {"unmatched", "/v1/chat/completions"} <= endpoints
