"""SIGTERM with 50 streams open: readiness turns false first, every stream
finishes (or is cut at the grace limit, and says so), every decision is in
the audit log, and the process exits 0."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.ops.helpers import CHAT, TRUSTED, US_ENTERPRISE, US_IP
from tests.support.processes import Admin, GatewayConfig, Proc, start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
STREAMS = 50


async def _stream(client: httpx.AsyncClient, key: str, chunks: int, started: asyncio.Event,
                  opened: list[str]) -> tuple[str, int, bool]:  # fmt: skip
    body = {"model": "haiku-lite", "stream": True,
            "messages": [{"role": "user", "content": "Hello"}]}  # fmt: skip
    headers = {"authorization": f"Bearer {key}", "x-forwarded-for": US_IP,
               "x-standin-chunks": str(chunks), "x-standin-interval-ms": "100"}  # fmt: skip
    async with client.stream("POST", CHAT, json=body, headers=headers) as response:
        decision_id = response.headers["x-gateway-decision-id"]
        opened.append(decision_id)
        if len(opened) == STREAMS:
            started.set()
        text = ""
        try:
            async for part in response.aiter_text():
                text += part
        except httpx.HTTPError:
            return decision_id, response.status_code, False
        return decision_id, response.status_code, "[DONE]" in text


async def _run(gateway: Proc, key: str, chunks: int) -> tuple[list[tuple[str, int, bool]], bool]:
    started = asyncio.Event()
    opened: list[str] = []
    limits = httpx.Limits(max_connections=STREAMS + 5)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60, limits=limits) as client:
        tasks = [asyncio.create_task(_stream(client, key, chunks, started, opened))
                 for _ in range(STREAMS)]  # fmt: skip
        await asyncio.wait_for(started.wait(), timeout=30)
        gateway.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=5) as probe:
            # The drain itself (the bundled mythos-5 upstream is unreachable here).
            ready = await probe.get("/readyz")
            not_ready = ready.status_code == 503 and ready.json()["checks"]["draining"] is True
        results = await asyncio.gather(*tasks)
    return results, not_ready


def _audit(db: Path) -> tuple[set[str], dict[str, dict[str, object]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id FROM audit_records WHERE kind='decision'")
        decisions = {r[0] for r in rows}
        outcomes = {r[0]: json.loads(r[1]) for r in conn.execute(
            "SELECT decision_id, body FROM audit_records WHERE kind='outcome'")}  # fmt: skip
    return decisions, outcomes


def _verify(tmp: Path) -> None:
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'gateway.db'}"}
    result = subprocess.run([sys.executable, "-m", "gateway.cli.main", "audit", "verify"],
                            env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True,
                            text=True, cwd=tmp, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("chunks", "grace", "complete"),
    [(20, "30", True), (60, "1", False)],
    ids=["all-finish", "grace-limit"],
)
def test_sigterm_during_open_streams(
    tmp_path: Path, standin: Proc, chunks: int, grace: str, complete: bool
) -> None:
    env = {**TRUSTED, "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "1",
           "GATEWAY_SHUTDOWN_GRACE_SECONDS": grace}  # fmt: skip
    gateway = start_gateway(GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env))
    try:
        key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
        t0 = time.monotonic()
        results, not_ready = asyncio.run(_run(gateway, key, chunks))
        code = gateway.proc.wait(timeout=60)
    finally:
        gateway.stop()
    took = time.monotonic() - t0
    assert not_ready, "/readyz did not turn 503 during the drain"
    assert code == 0, gateway.output()[-3000:]
    assert all(status == 200 for _, status, _ in results)
    finished = [ok for _, _, ok in results]
    decisions, outcomes = _audit(tmp_path / "gateway.db")
    ids = {decision_id for decision_id, _, _ in results}
    assert ids <= decisions, "a decision is missing from the audit log"
    assert ids <= set(outcomes), "an outcome is missing from the audit log"
    if complete:
        assert all(finished), f"{finished.count(False)} streams were cut"
        assert all(outcomes[i]["upstream_status"] == 200 for i in ids)
        assert all(outcomes[i].get("error") is None for i in ids)
    else:
        # 60 chunks at 100 ms outlive drain (1 s) + grace (1 s): uvicorn cuts
        # them, the client sees an incomplete stream, the log says so.
        assert not any(finished) and took < 20
        assert "timeout graceful shutdown exceeded" in gateway.output()
        # ...and so do their outcome records (they said "no error").
        assert all(outcomes[i].get("error") == "cancelled_by_gateway" for i in ids), outcomes
    _verify(tmp_path)
