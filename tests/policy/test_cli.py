"""`gateway policy ...` through the real typer app: output and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.policy.replay import replay_facts
from tests.policy.conftest import AFTER_DIRECTIVE, BEFORE_DIRECTIVE, POLICIES, facts, principal

runner = CliRunner()
BAD = Path(__file__).resolve().parents[1] / "data" / "bad_bundles"


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["policy", *args])
    return result.exit_code, result.output


def test_validate_default_bundle() -> None:
    code, out = run("validate", str(POLICIES))
    assert code == 0, out
    assert "valid" in out and "9 rules" in out


def test_validate_broken_bundle_exits_1_with_every_error() -> None:
    code, out = run("validate", str(BAD / "every_error_at_once"))
    assert code == 1
    for line in (BAD / "every_error_at_once" / "expected.txt").read_text().splitlines():
        assert line in out


def test_missing_directory_is_usage_error(tmp_path: Path) -> None:
    assert run("validate", str(tmp_path / "nope"))[0] == 2
    assert run("test", str(tmp_path / "nope"))[0] == 2
    assert run("validate")[0] == 2


def test_policy_tests_pass_on_default_bundle() -> None:
    code, out = run("test", str(POLICIES))
    assert code == 0, out
    assert " 0 failed" in out


def test_failing_policy_test_exits_1(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(POLICIES, bundle)
    (bundle / "tests" / "wrong.yaml").write_text("""\
cases:
  - name: Germans keep fable-5 forever (wrong)
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [DE]}
    request: {model: fable-5, origin: DE}
    at: "2026-06-14T00:00:00Z"
    expect: {decision: allow}
  - name: malformed
    request: {model: fable-5}
    expect: {decision: maybe}
""")
    code, out = run("test", str(bundle))
    assert code == 1
    assert "FAIL tests/wrong.yaml:2 Germans keep fable-5 forever (wrong)" in out
    assert "directive-frontier-us-persons-only" in out
    assert "tests/wrong.yaml:9" in out  # the malformed case, with its line


def test_diff_reports_in_words(tmp_path: Path) -> None:
    new = tmp_path / "new"
    shutil.copytree(POLICIES, new)
    rules = (new / "rules.yaml").read_text()
    (new / "rules.yaml").write_text(
        rules.replace(
            'effective: {from: "2026-06-13T04:00:00Z"}', 'effective: {from: "2026-07-01T00:00:00Z"}'
        )
    )
    jur = (new / "jurisdictions.yaml").read_text()
    (new / "jurisdictions.yaml").write_text(
        jur.replace(
            "countries: [CN, HK, MO, RU, BY, IR, KP, CU, VE]",
            "countries: [CN, HK, MO, RU, IR, KP, CU, VE, SY]",
        )
    )
    code, out = run("diff", str(POLICIES), str(new))
    assert code == 0, out
    assert "rules: changed directive-frontier-us-persons-only" in out
    assert "effective.from: 2026-06-13T04:00:00Z -> 2026-07-01T00:00:00Z" in out
    assert "country_groups: changed countries_of_concern" in out
    assert "countries: added SY; removed BY" in out
    assert run("diff", str(POLICIES), str(POLICIES))[1].strip().endswith("no changes")


def test_impact_from_jsonl(tmp_path: Path) -> None:
    # Two recorded decisions made before the directive: a German enterprise and
    # a US citizen, both on fable-5. Replayed after it, only the German flips.
    records = []
    for cid, cits in (("de", {"DE"}), ("us", {"US"})):
        p = principal(
            customer_id=cid, tier="enterprise", kyc_level="kyb_verified", citizenships=cits
        )
        records.append(
            {
                "id": f"rec-{cid}",
                "ts": BEFORE_DIRECTIVE.isoformat(),
                "decision": "allow",
                "rule_ids": ["tier-entitlement"],
                "facts": replay_facts(p, facts("fable-5", "DE")),
            }
        )
    records.append(
        {"id": "rec-401", "ts": BEFORE_DIRECTIVE.isoformat(), "decision": "deny", "facts": {}}
    )
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    code, out = run(
        "impact",
        str(POLICIES),
        "--since",
        "52w",
        "--from-jsonl",
        str(path),
        "--at",
        AFTER_DIRECTIVE.isoformat(),
    )
    assert code == 0, out
    assert "3 recorded decisions, 1 skipped, 1 unchanged, 1 allow->deny, 0 deny->allow" in out
    assert "rec-de customer de fable-5 from DE: allow -> deny" in out
    assert run("impact", str(POLICIES), "--since", "7x", "--from-jsonl", str(path))[0] == 2


def test_schema_is_json() -> None:
    code, out = run("schema")
    assert code == 0
    assert json.loads(out)["title"] == "Gateway policy bundle file"


def test_impact_reads_the_audit_database(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from gateway.db.session import create_engine
    from gateway.settings import Settings
    from tests.support.schema import ensure_schema

    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
    code, out = run("impact", str(POLICIES), "--since", "7d")
    assert code == 2 and "no audit database at" in out
    assert not (tmp_path / "gw.db").exists()  # a read-only command creates no database

    async def create() -> None:
        engine = create_engine(Settings(demo=True, database_url=url))
        await ensure_schema(engine)
        await engine.dispose()

    asyncio.run(create())
    code, out = run("impact", str(POLICIES), "--since", "7d")
    assert code == 0, out
    assert "0 recorded decisions" in out


NAIVE_AT_CASES = """\
cases:
  - name: naive at
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [DE], residence: DE}
    request: {model: fable-5, origin: DE}
    at: "2026-06-14T00:00:00"
    expect: {decision: deny}
  - name: unquoted date
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [DE], residence: DE}
    request: {model: fable-5, origin: DE}
    at: 2026-06-14
    expect: {decision: deny}
  - name: a number is not a date
    principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [DE], residence: DE}
    request: {model: fable-5, origin: DE}
    at: 20260614
    expect: {decision: deny}
  - name: naive kyc expiry
    principal: {tier: enterprise, kyc_level: kyb_verified, kyc_expires_at: "2030-01-01T00:00:00"}
    request: {model: haiku-lite, origin: US}
    expect: {decision: deny}
"""


def test_policy_test_at_without_time_zone_is_a_test_file_error(tmp_path: Path) -> None:
    # A naive `at` used to crash the engine into an `evaluation-error` deny, so
    # these cases (all expecting deny) passed.
    bundle = tmp_path / "b"
    shutil.copytree(POLICIES, bundle)
    (bundle / "tests" / "naive.yaml").write_text(NAIVE_AT_CASES)
    code, out = run("test", str(bundle))
    assert code == 1, out
    assert "4 failed" in out
    assert "tests/naive.yaml:5 cases[0].at" in out and "must carry a time zone" in out
    assert "tests/naive.yaml:10 cases[1].at" in out
    assert "tests/naive.yaml:15 cases[2].at" in out
    assert "tests/naive.yaml:18 cases[3].principal.kyc_expires_at" in out


def test_evaluation_error_never_passes_a_policy_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.policy import engine

    def crash(*args: object) -> None:
        raise TypeError("can't compare offset-naive and offset-aware datetimes")

    monkeypatch.setattr(engine, "_decide", crash)
    bundle = tmp_path / "b"
    shutil.copytree(POLICIES, bundle)
    shutil.rmtree(bundle / "tests")
    (bundle / "tests").mkdir()
    (bundle / "tests" / "deny.yaml").write_text(
        "cases:\n  - name: expects deny\n    request: {model: mythos-5, origin: KP}\n"
        "    at: '2026-06-14T00:00:00Z'\n    expect: {decision: deny}\n"
    )
    code, out = run("test", str(bundle))
    assert code == 1, out
    assert "FAIL tests/deny.yaml:2 expects deny" in out and "evaluation-error" in out


def test_bundle_text_is_printed_literally_not_as_rich_markup(tmp_path: Path) -> None:
    # Brackets in bundle text were read as rich markup: '[bold]' vanished and
    # '[/x]' or '[/red]' crashed the command with MarkupError.
    bundle = tmp_path / "b"
    shutil.copytree(POLICIES, bundle)
    (bundle / "zz-markup.yaml").write_text(
        "rules:\n"
        "  - id: markup\n    effect: deny\n"
        "    when: {prompt_matches: ['[bold]secret(', '[/x](']}\n"
        "  - {id: '^*', effect: deny, when: {}}\n"
        "country_groups:\n  '[/red]': {countries: [US]}\n"
    )
    code, out = run("validate", str(bundle))
    assert code == 1, out
    assert "invalid regex '[bold]secret('" in out
    assert "invalid regex '[/x]('" in out
    assert "group name '[/red]'" in out
    assert "String should match pattern '^[a-z0-9][a-z0-9._-]*$'" in out

    tests = tmp_path / "t"
    shutil.copytree(POLICIES, tests)
    (tests / "tests" / "names.yaml").write_text(
        "cases:\n"
        "  - name: path a/b [/etc] check [bold]x\n"
        "    request: {model: haiku-lite, origin: US}\n"
        "    at: '2026-06-14T00:00:00Z'\n"
        "    expect: {decision: deny}\n"
        "  - name: second\n"
        "    request: {model: haiku-lite, origin: US}\n"
        "    expect: {decision: allow, rule_ids: ['[/red]']}\n"
    )
    code, out = run("test", str(tests))
    assert code == 1, out
    assert "FAIL tests/names.yaml:2 path a/b [/etc] check [bold]x" in out
    assert "unknown rule id '[/red]'" in out


def test_impact_cli_separates_non_policy_outcomes_and_versions(tmp_path: Path) -> None:
    from gateway.policy.loader import load_dir

    own = load_dir(POLICIES).version
    assert own is not None
    us = principal(
        customer_id="us", tier="enterprise", kyc_level="kyb_verified", citizenships={"US"}
    )
    served = replay_facts(us, facts("haiku-lite", "US"))
    records = [
        {"id": "r1", "decision": "allow", "status": 200, "policy_version": own, "facts": served},
        {"id": "r2", "decision": "deny", "status": 429, "policy_version": own, "facts": served},
        {
            "id": "r3",
            "decision": "deny",
            "status": 403,
            "policy_version": "f" * 64,
            "facts": served,
        },
    ]
    for r in records:
        r["ts"] = AFTER_DIRECTIVE.isoformat()
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    code, out = run("impact", str(POLICIES), "--since", "52w", "--from-jsonl", str(path))
    assert code == 0, out
    assert "3 recorded decisions, 0 skipped, 1 unchanged, 0 allow->deny, 1 deny->allow" in out
    assert "1 not replayed" in out and "1 with status 429" in out
    assert own[:12] in out and "candidate" in out and "ffffffffffff" in out
    assert "r3 customer us haiku-lite from US: deny -> allow" in out
    assert "recorded under ffffffffffff" in out


def test_policy_test_references_are_checked(tmp_path: Path) -> None:
    # A case naming what the bundle does not define tests nothing: a typo'd
    # model expecting deny used to pass by default-deny.
    bundle = tmp_path / "b"
    shutil.copytree(POLICIES, bundle)
    (bundle / "tests" / "refs.yaml").write_text(
        "cases:\n"
        "  - name: typos everywhere\n"
        "    principal: {tier: enterprize, kyc_level: kyb_verifed}\n"
        "    request: {model: fable5, origin: XX}\n"
        "    at: '2026-06-14T00:00:00Z'\n"
        "    expect: {decision: deny, rule_ids: [directive-frontier-us-person-only]}\n"
        "  - name: wording\n"
        "    request: {modle: fable-5}\n"
        "    expect: {decision: deny}\n"
    )
    code, out = run("test", str(bundle))
    assert code == 1, out
    for line in (
        "tests/refs.yaml:4 cases[0].request.model\n     unknown model 'fable5'",
        "tests/refs.yaml:4 cases[0].request.origin\n     invalid ISO 3166 country or region",
        "tests/refs.yaml:3 cases[0].principal.tier\n     unknown tier 'enterprize'",
        "tests/refs.yaml:3 cases[0].principal.kyc_level\n     unknown KYC level 'kyb_verifed'",
        "tests/refs.yaml:6 cases[0].expect.rule_ids[0]\n     unknown rule id",
        "tests/refs.yaml:8 cases[1].request.modle\n     unknown key",
        "cases[1].request.model\n     required key is missing",
    ):
        assert line in out, (line, out)
    assert "Field required" not in out and "Extra inputs" not in out


def test_impact_without_database_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    code, out = run("impact", str(POLICIES), "--since", "7d")
    assert code == 2, out
    assert not (tmp_path / "gateway.db").exists()
