"""The gateway as installed from its wheel, away from any checkout.

Everything else in the suite runs the editable install, whose modules sit in
the repository beside ``policies/``; an operator who installs the wheel (or
the container image, built from it) has only ``site-packages``. This builds
the wheel the way ``pip wheel .`` does (offline: the dev extras carry the
build requirements), installs it into a directory of its own and runs
``gateway serve --demo`` from there in an empty directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.support.processes import free_port, wait_http

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's files (tracked and new, not ignored) in a fresh directory.

    Building in the checkout itself would reuse its ``build/`` and
    ``*.egg-info`` from earlier builds, which hide a file the build no longer
    produces.
    """
    root = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    return root


@pytest.fixture(scope="module")
def installed(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``site-packages``-like directory holding only the freshly built wheel."""
    root = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = (root / "dist").glob("gateway-*.whl")
    site = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return site


def test_the_wheel_carries_the_bundled_policies_and_migrations(installed: Path) -> None:
    bundled = installed / "gateway" / "bundled_policies"
    shipped = sorted(p.relative_to(bundled).as_posix() for p in bundled.rglob("*.yaml"))
    in_checkout = sorted(p.relative_to(REPO / "policies").as_posix()
                         for p in (REPO / "policies").rglob("*.yaml"))  # fmt: skip
    assert shipped == in_checkout
    for name in shipped:
        assert (bundled / name).read_bytes() == (REPO / "policies" / name).read_bytes(), name
    assert list((installed / "gateway" / "migrations").rglob("*.py"))


def test_the_source_distribution_carries_the_policies(source: Path, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
        cwd=source, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [sdist] = tmp_path.glob("gateway-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert any(name.endswith("/policies/rules.yaml") for name in names), names
    assert not any("__pycache__" in name for name in names)


def test_demo_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    # The installed copy comes first on the path, ahead of the editable install.
    env.update({"PYTHONPATH": str(installed), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "serve", "--demo", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=60)
        except (RuntimeError, TimeoutError):
            pytest.fail(log.read_text())
        text = log.read_text()
        assert f"loaded from {installed / 'gateway' / 'bundled_policies'}" in text, text
        key = re.findall(r"gk_[A-Za-z0-9_\-]+", text)[0]
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        answer = client.chat.completions.create(
            model="haiku-lite", messages=[{"role": "user", "content": "Hello"}]
        )
        assert answer.choices[0].message.content
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert ready["policy_version"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
