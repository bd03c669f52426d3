"""The systems the bench measures, and how each is started and made ready.

* ``direct``: the fast upstream itself (the baseline every other column is
  compared with).
* ``bare``: ``bench/bare_proxy.py`` in its pure-ASGI shape (the stack's floor).
* ``bare-fastapi``: the same relay as a plain FastAPI route (reference only).
* ``gateway``: ``gateway serve`` with the full pipeline: key auth, locate,
  classify, policy decision on the default bundle, quota admission and
  settlement, audit group commit to SQLite before forwarding, outcome record.
* ``gateway-normal``: the same with ``GATEWAY_SQLITE_SYNCHRONOUS=NORMAL``: a
  commit is still atomic and survives a process crash, but is not fsynced
  before the request goes on (WAL mode fsyncs at checkpoints), which shows
  what the disk's fsync costs each request.
* ``litellm``: LiteLLM's proxy (``litellm --config``, one worker, no
  database, master key only), routing ``haiku-lite`` to the same upstream:
  what many users would deploy instead. Measured when its ``litellm``
  command is found (``BENCH_LITELLM``, else ``PATH``); install it in a
  virtualenv of its own (``pip install 'litellm[proxy]'``): its pins are
  not the gateway's.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.procs import Proc, ProcessGroup, free_port

REPO = Path(__file__).resolve().parents[1]
LITELLM_MASTER_KEY = "sk-bench-litellm-master-key"
ADMIN_TOKEN = "bench-bootstrap-admin-token-0123456789abcdef"
CLIENT_IP = "8.8.8.8"  # a US address in the offline RIR data, via a trusted proxy
MODEL = "haiku-lite"

# The US enterprise customer the default bundle allows for haiku-lite
# (the same record as tests/e2e/conftest.py).
US_ENTERPRISE: dict[str, Any] = {
    "name": "Bench Robotics Inc",
    "kind": "organization",
    "citizenships": [],
    "residence": "US",
    "incorporated_in": "US",
    "ownership": [{"country": "US", "percent": 100}],
    "kyc_level": "kyb_verified",
    "tier": "enterprise",
    "attributes": [],
}

# The default bundle allows this customer 600 requests/minute, which a load
# test passes in a fraction of a second; the bench's copy of the bundle
# raises only these numbers, so every request is still metered (same code,
# same buckets) but none is refused.
BENCH_QUOTA = {"requests_per_minute": 1_000_000_000, "tokens_per_minute": 1_000_000_000_000}


def bench_policy_dir(workdir: Path, source: Path = REPO / "policies") -> Path:
    target = workdir / "policies"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    quotas_file = target / "quotas.yaml"
    doc = yaml.safe_load(quotas_file.read_text())
    default = doc["quotas"]["enterprise"]["default"]
    for key, value in BENCH_QUOTA.items():
        if key in default:
            default[key] = value
    quotas_file.write_text(
        "# Copied from policies/quotas.yaml by bench/targets.py: enterprise default\n"
        "# limits raised so a load test is metered but never refused.\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )
    return target


def start_upstream(group: ProcessGroup, cpus: str | None) -> Proc:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.fast_upstream", "--port", str(port)]
    return group.start("upstream", cmd, port, f"http://127.0.0.1:{port}/", cpus=cpus, cwd=REPO)


def start_bare(group: ProcessGroup, upstream: Proc, cpus: str | None, mode: str = "asgi") -> Proc:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.bare_proxy", "--port", str(port),
           "--upstream", upstream.url, "--mode", mode]
    name = "bare" if mode == "asgi" else "bare-fastapi"
    return group.start(name, cmd, port, f"http://127.0.0.1:{port}/healthz", cpus=cpus, cwd=REPO)


def gateway_env(workdir: Path, upstream: Proc, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_UPSTREAM_URL": upstream.url,
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'gateway.db'}",
            "GATEWAY_POLICY_DIR": str(bench_policy_dir(workdir)),
            "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "GATEWAY_TRUSTED_PROXIES": "127.0.0.0/8",
            "GATEWAY_UPSTREAM_API_KEY": "bench-upstream-key",
            "GATEWAY_LOG_LEVEL": "warning",
            "GATEWAY_POLICY_WATCH": "false",
            "PYTHONUNBUFFERED": "1",
            # The gateway runs from its own scratch directory (its SQLite file lives
            # there); make the checkout importable whether or not it is pip-installed.
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
    )
    env.update(extra)
    return env


def start_gateway(
    group: ProcessGroup, upstream: Proc, cpus: str | None, workdir: Path,
    extra_env: dict[str, str], name: str = "gateway",
) -> tuple[Proc, str]:
    """Start ``gateway serve`` (one worker), create the bench customer and key."""
    gwdir = workdir / name
    gwdir.mkdir(parents=True, exist_ok=True)
    for stale in gwdir.glob("gateway.db*"):
        stale.unlink()
    port = free_port()
    cmd = [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(port), "--workers", "1"]
    proc = group.start(
        name, cmd, port, f"http://127.0.0.1:{port}/healthz", cpus=cpus,
        env=gateway_env(gwdir, upstream, extra_env), cwd=gwdir,
    )
    with httpx.Client(
        base_url=proc.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
    ) as admin:
        created = admin.post("/admin/v1/customers", json=US_ENTERPRISE)
        if created.status_code != 201:
            raise RuntimeError(f"creating the bench customer: {created.status_code} {created.text}")
        issued = admin.post(f"/admin/v1/customers/{created.json()['id']}/keys", json={})
        if issued.status_code != 201:
            raise RuntimeError(f"issuing the bench key: {issued.status_code} {issued.text}")
        key: str = issued.json()["key"]
    return proc, key


def litellm_command() -> str | None:
    """The ``litellm`` executable to benchmark, or None when it is not installed."""
    configured = os.environ.get("BENCH_LITELLM")
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("litellm")


def start_litellm(group: ProcessGroup, upstream: Proc, cpus: str | None, workdir: Path,
                  command: str) -> tuple[Proc, str]:
    """LiteLLM's proxy on one worker against ``upstream``; returns it and its key."""
    config = {
        "model_list": [{
            "model_name": MODEL,
            "litellm_params": {"model": f"openai/{MODEL}",
                               "api_base": upstream.url.rstrip("/") + "/v1",
                               "api_key": "bench-upstream-key"},
        }],
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ)
    # No network here: use the bundled model cost map instead of fetching it.
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["LITELLM_LOG"] = "ERROR"
    port = free_port()
    cmd = [command, "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
           "--num_workers", "1"]
    proc = group.start("litellm", cmd, port, f"http://127.0.0.1:{port}/health/liveliness",
                       cpus=cpus, env=env, cwd=workdir, timeout=120)
    return proc, LITELLM_MASTER_KEY


def request_headers(key: str) -> dict[str, str]:
    """Sent to every target alike (direct and bare ignore the credential)."""
    return {
        "content-type": "application/json",
        "authorization": f"Bearer {key}",
        "x-forwarded-for": CLIENT_IP,
    }


def chat_body(stream: bool) -> bytes:
    body = (
        '{"model":"' + MODEL + '","max_tokens":16,'
        '"messages":[{"role":"user","content":"Hello, how are you today?"}]'
    )
    return (body + (',"stream":true}' if stream else "}")).encode()


def check_target(name: str, proc: Proc, key: str) -> str | None:
    """One real request through the target; None if it answered as expected."""
    try:
        response = httpx.post(
            proc.url + "/v1/chat/completions", content=chat_body(False),
            headers=request_headers(key), timeout=10,
        )
    except httpx.HTTPError as exc:
        return f"{name}: {exc!r}"
    if response.status_code != 200 or b'"usage"' not in response.content:
        return f"{name}: HTTP {response.status_code} {response.text[:300]}"
    if name.startswith("gateway") and "x-gateway-decision-id" not in response.headers:
        return f"{name}: answered without x-gateway-decision-id"
    return None
