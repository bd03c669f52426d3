"""Fixtures that run the real gateway and the real stand-in upstream as processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Admin, GatewayConfig, Proc, start_gateway, start_standin

# A US address in the offline RIR data; requests come "from" it through a
# trusted proxy (the test client on loopback), as behind a load balancer.
US_IP = "8.8.8.8"
TRUSTED = {"GATEWAY_TRUSTED_PROXIES": "127.0.0.0/8,::1/128"}

# An email-verified individual on the public tier (smallest quotas, no agentic use).
PUBLIC_PERSON = {
    "name": "Pat Public",
    "kind": "individual",
    "citizenships": ["US"],
    "residence": "US",
    "kyc_level": "email_verified",
    "tier": "public",
}

US_ENTERPRISE = {
    "name": "Acme Robotics Inc",
    "kind": "organization",
    "citizenships": [],
    "residence": "US",
    "incorporated_in": "US",
    "ownership": [{"country": "US", "percent": 100}],
    "kyc_level": "kyb_verified",
    "tier": "enterprise",
    "attributes": [],
}


@pytest.fixture(scope="session")
def standin() -> Iterator[Proc]:
    proc = start_standin()
    yield proc
    proc.stop()


@pytest.fixture()
def standin_log(standin: Proc) -> Iterator[Callable[[], list[dict[str, object]]]]:
    httpx.delete(f"{standin.url}/_standin/requests")

    def read() -> list[dict[str, object]]:
        received: list[dict[str, object]] = httpx.get(f"{standin.url}/_standin/requests").json()
        return received

    yield read


GatewayFactory = Callable[..., Proc]


@pytest.fixture()
def gateway_factory(tmp_path: Path, standin: Proc) -> Iterator[GatewayFactory]:
    started: list[Proc] = []

    def start(
        env: dict[str, str] | None = None, upstream_url: str | None = standin.url, **kw: object
    ) -> Proc:
        cfg = GatewayConfig(tmp=tmp_path, upstream_url=upstream_url, env={**TRUSTED, **(env or {})})
        for key, value in kw.items():
            setattr(cfg, key, value)
        proc = start_gateway(cfg)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture()
def gateway(gateway_factory: GatewayFactory) -> Proc:
    return gateway_factory()


@pytest.fixture()
def admin(gateway: Proc) -> Admin:
    return Admin(gateway.url)


@pytest.fixture()
def enterprise_key(admin: Admin) -> str:
    return admin.customer_with_key(**US_ENTERPRISE)
