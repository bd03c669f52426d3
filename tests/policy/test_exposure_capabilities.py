"""``gateway policy impact --customers`` and directives on a capability.

A directive that cuts one country's citizens off one model's ``coding``
capability leaves every customer the model itself: judged with no capability
only, the report said "0 lose a model" and an officer would read that the
directive touched nobody among the customer records.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.policy.compiled import CompiledBundle
from gateway.policy.exposure import exposure
from tests.policy.conftest import MINIMAL, principal

runner = CliRunner()

AT = datetime(2026, 11, 29, tzinfo=UTC)
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)

CAPABILITIES = """\
capabilities:
  coding:
    when: {prompt_matches: ['```']}
"""

RULES = """\
rules:
  - id: directive-cn-small-coding
    effect: deny
    when: {model_in: [small], capability_in: [coding], citizenship_in: [CN]}
    effective: {from: "2026-11-29T00:00:00Z"}
  - id: licence-cn-lab
    effect: exempt
    exempts: [directive-cn-small-coding]
    when: {customer_in: [cn-lab]}
  - id: entitlement
    effect: allow
    when: {model_allowed_for_tier: true}
"""


def customers() -> list[object]:
    ent = {"tier": "enterprise", "kyc_level": "kyb_verified", "residence": "SG"}
    return [
        principal(customer_id="cn-dev", citizenships=["CN"], **ent),
        principal(customer_id="cn-lab", citizenships=["CN"], **ent),
        principal(customer_id="jp-dev", citizenships=["JP"], **ent),
    ]


def test_a_directive_on_one_capability_lists_the_customers_it_cuts(
    make_bundle: Callable[..., CompiledBundle],
) -> None:
    bundle = make_bundle(RULES, extra={"capabilities.yaml": CAPABILITIES})
    report = exposure(customers(), bundle, AT, None, NOW)  # type: ignore[arg-type]
    assert report.cut_customers() == {"cn-dev"}
    [cut] = report.cut
    assert (cut.model, cut.capability) == ("small", "coding")
    assert cut.rule_ids == ("directive-cn-small-coding",)
    assert report.by_rule == {"directive-cn-small-coding": 1}
    assert not report.granted


def test_a_model_lost_whole_is_one_row_not_one_per_capability(
    make_bundle: Callable[..., CompiledBundle],
) -> None:
    whole = RULES.replace("capability_in: [coding], ", "")
    bundle = make_bundle(whole, extra={"capabilities.yaml": CAPABILITIES})
    report = exposure(customers(), bundle, AT, None, NOW)  # type: ignore[arg-type]
    assert [(c.customer_id, c.model, c.capability) for c in report.cut] == [
        ("cn-dev", "small", None)
    ]


def test_a_rule_naming_a_customer_no_record_holds_is_reported(
    tmp_path: Path, make_bundle: Callable[..., CompiledBundle]
) -> None:
    # A licence for "cn-lab" typed "cn-labs" matches nobody: the licensed
    # customer is cut at the directive's start. The bundle cannot know the
    # records; `impact --customers` reads them all and says so.
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    for name, text in {**MINIMAL, "capabilities.yaml": CAPABILITIES,
                       "rules.yaml": RULES.replace("[cn-lab]", "[cn-labs]")}.items():  # fmt: skip
        (bundle_dir / name).write_text(text)
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
           "COLUMNS": "200"}  # fmt: skip
    added = runner.invoke(app, ["customers", "add", "CN Lab", "--id", "cn-lab",
                                "--citizenship", "CN", "--residence", "SG"], env=env)  # fmt: skip
    assert added.exit_code == 0, added.output
    result = runner.invoke(app, ["policy", "impact", str(bundle_dir), "--customers"], env=env)
    assert result.exit_code == 0, result.output
    assert (
        "warning: rule licence-cn-lab names customer_in 'cn-labs', which no customer "
        "record holds: it matches nobody"
    ) in result.output, result.output
    assert "'cn-lab'" not in result.output, result.output
