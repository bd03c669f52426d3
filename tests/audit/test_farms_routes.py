"""``GET /admin/v1/audit/farms`` through the real admin-token dependency."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import gateway.audit.farms
from gateway.admin import farms as farm_routes
from gateway.admin.routers import ADMIN_ROUTERS
from gateway.audit.writer import AuditWriter
from gateway.settings import Settings
from tests.audit import farm_scenario as farms
from tests.support.identity_app import PeerLocator, admin_tokens, make_app

NOW = farms.T0 + timedelta(hours=1)
Client = tuple[httpx.AsyncClient, dict[str, dict[str, str]]]


@dataclass
class _Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    audit: AuditWriter
    locator: PeerLocator = field(default_factory=PeerLocator)
    extras: dict[str, Any] = field(default_factory=dict)

    def clock(self) -> datetime:
        return NOW


@pytest.fixture
async def client(
    writer: AuditWriter, settings: Settings, engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Client]:
    await farms.write_scenario(writer)
    await writer.stop()
    clear = await admin_tokens(sessions, ("admin", "auditor", "compliance"), "t")
    tokens = {role: {"authorization": f"Bearer {token}"} for role, token in clear.items()}
    app = make_app(_Services(settings, engine, sessions, writer),  # type: ignore[arg-type]
                   farm_routes.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as c:
        yield c, tokens


WINDOW = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}
PATH = "/admin/v1/audit/farms"


def test_the_route_is_served() -> None:
    assert PATH in [getattr(r, "path", None) for router in ADMIN_ROUTERS for r in router.routes]
    assert farm_routes.DEFAULT_MIN_ACCOUNTS == gateway.audit.farms.DEFAULT_MIN_ACCOUNTS


def test_workers_do_not_load_the_report_until_it_is_asked_for() -> None:
    """Every serving worker imports the admin routers; the report's modules wait."""
    code = ("import sys, gateway.app; "
            "print(sorted(m for m in sys.modules if m.startswith('gateway.audit.farm')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout


async def test_roles(client: Client) -> None:
    """Auditor (and admin): it reads the decision log. Compliance: 403."""
    c, tokens = client
    assert (await c.get(PATH, params=WINDOW)).status_code == 401
    bad = {"authorization": "Bearer gat_nope_nope"}
    assert (await c.get(PATH, params=WINDOW, headers=bad)).status_code == 401
    refused = await c.get(PATH, params=WINDOW, headers=tokens["compliance"])
    assert refused.status_code == 403 and refused.json()["detail"]
    for role in ("auditor", "admin"):
        r = await c.get(PATH, params=WINDOW, headers=tokens[role])
        assert r.status_code == 200, (role, r.text)


async def test_report(client: Client) -> None:
    c, tokens = client
    r = await c.get(PATH, params=WINDOW, headers=tokens["auditor"])
    doc = r.json()
    assert doc["clusters"] == [farms.FARM_B_EXPECTED, farms.FARM_A_EXPECTED]
    assert doc["weak_clusters_hidden"] == 1
    weak = await c.get(PATH, params={**WINDOW, "include_weak": "true", "min_accounts": 3},
                       headers=tokens["auditor"])
    assert weak.json()["clusters"][2] == farms.NAT_EXPECTED
    five = await c.get(PATH, params={**WINDOW, "min_accounts": 5, "capability": ["agentic"]},
                       headers=tokens["auditor"])
    (farm_a,) = five.json()["clusters"]
    assert farm_a["customers"] == farms.FARM_A and farm_a["capabilities"] == {"agentic": 0}
    loose = await c.get(PATH, params={**WINDOW, "min_accounts": 2, "min_shared_prompts": 1},
                        headers=tokens["auditor"])
    assert ["big-corp", "solo"] in [x["customers"] for x in loose.json()["clusters"]]


async def test_default_window_is_the_week_before_to(client: Client) -> None:
    """Without ``from``: 7 days before ``to`` (default now), which takes in farm-a-1's
    request from the NAT address two days before the scenario."""
    c, tokens = client
    doc = (await c.get(PATH, headers=tokens["auditor"])).json()
    assert (doc["from"], doc["to"]) == ("2026-02-22T13:00:00Z", "2026-03-01T13:00:00Z")
    assert [*farms.FARM_A, *farms.NAT] in [x["customers"] for x in doc["clusters"]]
    doc = (await c.get(PATH, params={"to": "2026-02-28T00:00:00Z"},
                       headers=tokens["auditor"])).json()
    assert doc["from"] == "2026-02-21T00:00:00Z" and doc["scanned"]["requests"] == 1


@pytest.mark.parametrize(("params", "name"), [
    ({"from": "2026-03-01T00:00:00"}, "from"),
    ({"to": "1767225600"}, "to"),
    ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
    ({"min_accounts": "1"}, "min_accounts"),
    ({"max_prompt_customers": "1"}, "max_prompt_customers"),
    # Pairs are formed per shared prompt: a bound of a million let one auditor's
    # query build every pair of the customers of a common prompt in the serving
    # process (5,000 customers: 12.5 million pairs).
    ({"max_prompt_customers": "1000000"}, "max_prompt_customers"),
    ({"min_shared_prompts": "0"}, "min_shared_prompts"),
    ({"capability": 'co"ding'}, "capability"),
])
async def test_bad_parameters_are_422_naming_them(
    client: Client, params: dict[str, str], name: str
) -> None:
    c, tokens = client
    r = await c.get(PATH, params=params, headers=tokens["auditor"])
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["query", name]], r.text


async def test_a_report_too_slow_for_the_statement_timeout_is_a_503_saying_so(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def slow(*_: Any) -> dict[str, Any]:
        raise TimeoutError  # what asyncpg's command_timeout raises (an OSError)

    monkeypatch.setattr(gateway.audit.farms, "farm_report", slow)
    c, tokens = client
    r = await c.get(PATH, params=WINDOW, headers=tokens["auditor"])
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "narrow the window" in r.json()["detail"]
