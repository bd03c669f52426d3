"""``POST /admin/v1/policy/validate`` loads the candidate off the event loop:
while a large bundle is validated (seconds), the worker goes on serving."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e
BULK_MODELS = 8000  # about 1-2 s to load here


def _large_valid_bundle() -> dict[str, str]:
    files = {path.name: path.read_text() for path in (REPO / "policies").glob("*.yaml")}
    files["models.yaml"] += "".join(
        f"  bulk-model-{i}:\n    tiers: [enterprise, research, government, defense]\n"
        for i in range(BULK_MODELS)
    )
    return files


def test_healthz_is_answered_while_a_large_bundle_is_validated(
    gateway: Proc, admin: Admin
) -> None:
    files = _large_valid_bundle()
    answer: list[httpx.Response] = []
    span: list[float] = []

    def validate() -> None:
        started = time.perf_counter()
        answer.append(admin.http.post("/admin/v1/policy/validate", json={"files": files},
                                      timeout=120))  # fmt: skip
        span.append(time.perf_counter() - started)

    worker = threading.Thread(target=validate)
    worker.start()
    latencies: list[float] = []
    with httpx.Client(base_url=gateway.url, timeout=120) as client:
        while worker.is_alive():
            sent = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - sent)
    worker.join()

    assert answer[0].status_code == 200, answer[0].text
    assert answer[0].json()["ok"] is True, answer[0].json()["errors"][:3]
    validate_seconds = span[0]
    # On the loop, one /healthz waited for (nearly) the whole load; off it,
    # every one is answered in a small part of the validate's own duration,
    # and many are answered while it runs.
    assert max(latencies) < validate_seconds / 2, (max(latencies), validate_seconds)
    assert len(latencies) >= 5, (latencies, validate_seconds)
