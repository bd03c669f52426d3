"""Start real processes for end-to-end tests: the stand-in model API and the gateway.

Each runs as its own OS process on a free loopback port, exactly as an
operator would run it (``gateway serve``), so the tests exercise uvicorn,
uvloop, httptools, the lifespan and the real network path.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "e2e-bootstrap-admin-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(
                f"process exited with {proc.returncode} before {url} answered:\n{out}"
            )
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        if self.log_path is not None and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""


def start_standin(port: int | None = None) -> Proc:
    return _start_upstream("gateway.demo.standin", "/_standin/streams", port)


def start_rough_upstream(port: int | None = None) -> Proc:
    """The upstream that misbehaves on request (``tests/support/rough_upstream.py``)."""
    return _start_upstream("tests.support.rough_upstream", "/_rough/log", port)


def _start_upstream(module: str, ready_path: str, port: int | None) -> Proc:
    port = port or free_port()
    # Output goes to a file, never a pipe nobody reads: a full pipe would block
    # the stand-in the moment it logs enough (e.g. 50 streams cut at once).
    log_path = Path(tempfile.mkdtemp(prefix="upstream-")) / "upstream.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port)],
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}{ready_path}", proc)
    except (RuntimeError, TimeoutError) as exc:
        proc.kill()
        raise RuntimeError(f"{exc}\n{log_path.read_text(errors='replace')}") from None
    return Proc(proc, port, log_path)


@dataclass
class GatewayConfig:
    tmp: Path
    upstream_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    demo: bool = False


def gateway_env(cfg: GatewayConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{cfg.tmp / 'gateway.db'}",
            "GATEWAY_POLICY_DIR": str(REPO / "policies"),
            "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "GATEWAY_UPSTREAM_API_KEY": "upstream-secret-key",
            "GATEWAY_LOG_LEVEL": "warning",
            # No load balancer to drain for: stop at once on SIGTERM (tests that
            # exercise the drain set it themselves).
            "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if cfg.upstream_url:
        env["GATEWAY_UPSTREAM_URL"] = cfg.upstream_url
    env.update(cfg.env)
    return env


def start_gateway(
    cfg: GatewayConfig, port: int | None = None, extra_env: Mapping[str, str] | None = None
) -> Proc:
    port = port or free_port()
    env = gateway_env(cfg)
    if extra_env:
        env.update(extra_env)
    cmd = [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(port)]
    cmd += ["--workers", str(cfg.workers)]
    if cfg.demo:
        cmd.append("--demo")
    log_path = cfg.tmp / f"gateway-{port}.log"
    log_file = log_path.open("ab")
    proc = subprocess.Popen(cmd, cwd=cfg.tmp, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    except (RuntimeError, TimeoutError) as exc:
        proc.kill()
        raise RuntimeError(
            f"{exc}\n--- gateway log ---\n{log_path.read_text(errors='replace')}"
        ) from None
    return Proc(proc, port, log_path)


class Admin:
    """A thin client for the admin API, with the bootstrap admin token."""

    def __init__(self, base_url: str, token: str = ADMIN_TOKEN) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"authorization": f"Bearer {token}"}, timeout=10
        )

    def customer(self, **record: object) -> dict[str, object]:
        response = self.http.post("/admin/v1/customers", json=record)
        assert response.status_code == 201, response.text
        created: dict[str, object] = response.json()
        return created

    def key(self, customer_id: str) -> str:
        response = self.http.post(f"/admin/v1/customers/{customer_id}/keys", json={})
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key

    def customer_with_key(self, **record: object) -> str:
        created = self.customer(**record)
        return self.key(str(created["id"]))
