"""``/readyz`` probes every upstream the gateway forwards to, not only the default.

A model the bundle routes to its own upstream (``models.<name>.upstream``)
is served by that host: when it is unreachable, those requests get 502s, and
readyz used to say nothing of it. Each distinct upstream is probed, in
parallel, and named in the answer; ``checks.model_upstreams`` is false when
one is down. Readiness itself follows the default upstream: every replica
shares a model's upstream, so failing readiness for it would take all of them
out of the load balancer, and every other model with them.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.conftest import GatewayFactory
from tests.support.processes import REPO, Admin, Proc, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture()
def unanswering() -> Iterator[list[str]]:
    """Two upstreams that accept connections and never answer (each probe waits
    out its timeout): readyz stays fast only if they are probed in parallel."""
    sockets = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # never accepted: the handshake completes, no answer comes
        sockets.append(sock)
    yield [f"http://127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for sock in sockets:
        sock.close()


def _route(bundle: Path, upstreams: dict[str, str | None]) -> None:
    models_file = bundle / "models.yaml"
    doc = yaml.safe_load(models_file.read_text())
    for model, upstream in upstreams.items():
        doc["models"][model].pop("upstream", None)
        if upstream is not None:
            doc["models"][model]["upstream"] = upstream
    models_file.write_text(yaml.safe_dump(doc))


def _readyz(gateway: Proc) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(f"{gateway.url}/readyz", timeout=30)
    return response, time.monotonic() - started


def test_readyz_names_each_upstream_and_fails_only_on_the_default(
    gateway_factory: GatewayFactory, standin: Proc, tmp_path: Path, unanswering: list[str]
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    refused = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    _route(bundle, {"haiku-lite": None, "fable-5": refused, "mythos-5": unanswering[0]})
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle),
                                   "GATEWAY_POLICY_WATCH": "false"})  # fmt: skip
    admin = Admin(gateway.url)

    response, _ = _readyz(gateway)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["ready"] is True and doc["checks"]["upstream"] is True, doc
    assert doc["checks"]["model_upstreams"] is False, doc
    assert doc["upstreams"] == {standin.url: True, refused: False, unanswering[0]: False}, doc
    assert doc["checks"]["database"] is True and doc["checks"]["quota_store"] is True

    # Every model on a reachable upstream (after a reload).
    _route(bundle, {"fable-5": standin.url + "/", "mythos-5": None})
    assert admin.http.post("/admin/v1/policy/reload").status_code == 200
    response, _ = _readyz(gateway)
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["model_upstreams"] is True
    assert response.json()["upstreams"] == {standin.url: True, standin.url + "/": True}

    # Two upstreams that never answer cost one probe timeout, not two.
    _route(bundle, {"fable-5": unanswering[0], "mythos-5": unanswering[1]})
    assert admin.http.post("/admin/v1/policy/reload").status_code == 200
    response, took = _readyz(gateway)
    assert response.status_code == 200
    assert response.json()["upstreams"] == {
        standin.url: True, unanswering[0]: False, unanswering[1]: False,
    }  # fmt: skip
    assert took < 3.5, f"readyz took {took:.1f} s: upstreams probed one after another?"


def test_readyz_is_503_when_the_default_upstream_is_down(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    gateway = gateway_factory(upstream_url=refused)
    response, _ = _readyz(gateway)
    assert response.status_code == 503, response.text
    doc = response.json()
    assert doc["ready"] is False and doc["checks"]["upstream"] is False, doc
    assert doc["upstreams"][refused] is False, doc


def test_readyz_never_shows_credentials_in_an_upstream_url(
    gateway_factory: GatewayFactory, standin: Proc, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    port = standin.url.rsplit(":", 1)[1]
    _route(bundle, {"mythos-5": f"http://ops:s3cret@127.0.0.1:{port}/api?token=s3cret"})
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    response, _ = _readyz(gateway)
    assert "s3cret" not in response.text, response.text
    assert f"http://127.0.0.1:{port}/api" in response.json()["upstreams"], response.text
