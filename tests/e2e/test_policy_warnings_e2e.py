"""`GET /admin/v1/policy` shows the warnings of the bundle in force.

A directive saved into the watched directory is loaded without anyone
running `policy validate`; its warnings (a licence that can never lift the
directive, an allow meant as an exception) went to the server log only, so
the officer checking that "the running gateway holds it" saw a clean bundle.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.processes import REPO, Admin

pytestmark = pytest.mark.e2e

DIRECTIVE = """\
rules:
  - id: directive-cn-haiku-coding
    effect: deny
    when: {model_in: [haiku-lite], capability_in: [coding], citizenship_in: [CN]}
    effective: {from: "2099-01-01T00:00:00Z"}
  - id: licence-cn-lab
    effect: exempt
    exempts: [directive-cn-haiku-coding]
    when: {customer_in: [cn-lab]}
    effective: {until: "2098-01-01T00:00:00Z"}
"""


def test_the_running_bundles_warnings_are_shown_with_it(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live)})
    admin = Admin(gateway.url)
    before = admin.http.get("/admin/v1/policy").json()
    assert before["warnings"] == [], before
    (live / "directive.yaml").write_text(DIRECTIVE)
    deadline = time.monotonic() + 30
    while (policy := admin.http.get("/admin/v1/policy").json())["version"] == before["version"]:
        assert time.monotonic() < deadline, "the directive was not loaded"
        time.sleep(0.2)
    assert policy["warnings"] == [
        "directive.yaml:8 rules[1].exempts[0]: can never lift 'directive-cn-haiku-coding': "
        "this rule is in force until 2098-01-01T00:00:00Z and 'directive-cn-haiku-coding' "
        "from 2099-01-01T00:00:00Z, so their windows do not overlap"
    ], policy
