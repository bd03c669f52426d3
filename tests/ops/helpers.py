"""Shared bits for ops and scale tests: customers, requests, metric parsing."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

US_IP = "8.8.8.8"
TRUSTED = {"GATEWAY_TRUSTED_PROXIES": "127.0.0.0/8,::1/128"}

US_ENTERPRISE = {
    "name": "Acme Robotics Inc",
    "kind": "organization",
    "residence": "US",
    "incorporated_in": "US",
    "ownership": [{"country": "US", "percent": 100}],
    "kyc_level": "kyb_verified",
    "tier": "enterprise",
}
US_PUBLIC = {
    "name": "Jane Public",
    "kind": "individual",
    "citizenships": ["US"],
    "residence": "US",
    "kyc_level": "email_verified",
    "tier": "public",
}
CHAT = "/v1/chat/completions"


def chat(
    client: httpx.Client | str,
    key: str,
    model: str = "haiku-lite",
    stream: bool = False,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "Hello"}]}
    all_headers = {"authorization": f"Bearer {key}", "x-forwarded-for": US_IP, **(headers or {})}
    if isinstance(client, str):
        return httpx.post(client + CHAT, json=body, headers=all_headers, timeout=30)
    return client.post(CHAT, json=body, headers=all_headers)


def scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` as {(sample name, sorted labels): value}."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
