"""Sanctions screening in a running gateway (SPEC section 4): a customer created
or renamed is screened against GATEWAY_SANCTIONS_LIST, and a list that cannot be
loaded stops `gateway serve` with exit code 2 naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.processes import REPO, Admin, free_port

pytestmark = pytest.mark.e2e
DATA = REPO / "tests" / "data"


@pytest.mark.parametrize(
    ("list_file", "listed", "renamed_to"),
    [
        ("sanctions_sample.csv", "Zoltrava Shipping Ltd", "Zoltrava Maritime Holdings"),
        ("sanctions_sample.ftm.jsonl", "Ostrel Aerotechnics", "Grigor Vantsenko"),
    ],
)
def test_running_gateway_screens_created_and_renamed_customers(
    gateway_factory: GatewayFactory, list_file: str, listed: str, renamed_to: str
) -> None:
    gateway = gateway_factory(env={"GATEWAY_SANCTIONS_LIST": str(DATA / list_file)})
    admin = Admin(gateway.url)
    hit = admin.customer(name=listed)
    assert hit["sanctions_status"] == "potential_match", hit
    screening = hit["screening"]
    assert isinstance(screening, dict) and screening["list_version"] and screening["best_match"]
    clean = admin.customer(name="Teodor Marchetti")
    assert clean["sanctions_status"] == "clear" and clean["screening"]["list_version"]  # type: ignore[index]
    renamed = admin.http.patch(
        f"/admin/v1/customers/{clean['id']}", json={"name": renamed_to}
    )
    assert renamed.json()["sanctions_status"] == "potential_match", renamed.text


def _serve_demo(tmp_path: Path, sanctions_list: str) -> tuple[int | None, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_SANCTIONS_LIST": sanctions_list, "COLUMNS": "200"})
    cmd = [sys.executable, "-m", "gateway.cli.main", "serve", "--demo", "--port", str(free_port())]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=60)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        return None, out.decode(errors="replace")  # it started: the list was ignored


@pytest.mark.parametrize("problem", ["missing", "empty", "not_a_list"])
def test_serve_refuses_a_list_it_cannot_load(tmp_path: Path, problem: str) -> None:
    path = tmp_path / "list.csv"
    if problem == "empty":
        path.write_text("name,alt_names,type,source\n")
    elif problem == "not_a_list":
        path.write_text("just,some,columns\n1,2,3\n")
    code, out = _serve_demo(tmp_path, str(path))
    assert code == 2, out[-3000:]
    assert "GATEWAY_SANCTIONS_LIST" in out and "Traceback" not in out, out[-3000:]
