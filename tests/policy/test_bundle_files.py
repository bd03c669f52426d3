"""Which files of a policy directory are read: none is ignored without a word.

A deny rule in ``sanctions/extra.yaml`` or ``extra.YAML`` was never loaded,
``validate`` said valid, the version did not change, and the rule never applied.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from gateway.admin.policy import CandidateBundle, validate_policy
from gateway.cli.main import app
from gateway.policy.holder import PolicyHolder
from gateway.policy.loader import load_bundle, load_dir
from tests.policy.conftest import MINIMAL, POLICIES

runner = CliRunner()

DENY_DE = """\
rules:
  - id: extra-deny-de
    effect: deny
    when: {origin_in: [DE]}
"""
STRAY = "sanctions/extra.yaml: not read: bundle files must be directly in the policy directory"


def policy(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["policy", *args])
    return result.exit_code, result.output


def _copy(tmp_path: Path, name: str = "b") -> Path:
    bundle = tmp_path / name
    shutil.copytree(POLICIES, bundle)
    return bundle


def test_upper_case_extensions_are_loaded(tmp_path: Path) -> None:
    bundle = _copy(tmp_path)
    (bundle / "extra.YAML").write_text(DENY_DE)
    (bundle / "x.Yml").write_text("country_groups:\n  extra_group: {countries: [FR]}\n")
    result = load_dir(bundle)
    assert result.ok, result.errors
    assert "extra.YAML" in result.files and "x.Yml" in result.files
    assert result.version != load_dir(POLICIES).version
    compiled = load_bundle(bundle)
    assert "extra-deny-de" in {r.id for r in compiled.rules}
    assert "extra_group" in compiled.groups


def test_yaml_in_a_sub_directory_refuses_the_bundle_naming_it(tmp_path: Path) -> None:
    bundle = _copy(tmp_path)
    (bundle / "sanctions").mkdir()
    (bundle / "sanctions" / "extra.yaml").write_text(DENY_DE)
    (bundle / "sanctions" / "deeper").mkdir()
    (bundle / "sanctions" / "deeper" / "more.YML").write_text(DENY_DE)
    (bundle / "sanctions" / "README.md").write_text("not YAML: not policy, not reported\n")
    # Hidden directories (a git checkout's .github) are not the bundle's.
    (bundle / ".github").mkdir()
    (bundle / ".github" / "ci.yml").write_text("on: push\n")
    result = load_dir(bundle)
    assert not result.ok
    assert [str(e) for e in result.errors] == [
        STRAY.replace("extra.yaml", "deeper/more.YML") + " (only tests/ may hold YAML, "
        "the policy tests); move it up to merge it, or out of the directory",
        STRAY + " (only tests/ may hold YAML, the policy tests); "
        "move it up to merge it, or out of the directory",
    ]
    for command in (
        ("validate", str(bundle)),
        ("test", str(bundle)),
        ("diff", str(POLICIES), str(bundle)),
        ("diff", str(bundle), str(POLICIES)),
    ):
        code, out = policy(*command)
        assert code == 1, (command, out)
        assert STRAY in out and "invalid policy bundle (2 errors)" in out, (command, out)


def test_policy_tests_are_found_at_any_depth_and_extension_case(tmp_path: Path) -> None:
    bundle = _copy(tmp_path)
    case = (
        "cases:\n  - name: {name}\n    request: {{model: haiku-lite, origin: KP}}\n"
        "    expect: {{decision: allow}}\n"
    )
    (bundle / "tests" / "upper.YAML").write_text(case.format(name="upper case extension"))
    (bundle / "tests" / "sub").mkdir()
    (bundle / "tests" / "sub" / "nested.yml").write_text(case.format(name="nested"))
    code, out = policy("test", str(bundle))
    assert code == 1, out
    assert "FAIL tests/upper.YAML:2 upper case extension" in out
    assert "FAIL tests/sub/nested.yml:2 nested" in out


async def test_reload_refuses_a_stray_file_and_get_policy_shows_it(tmp_path: Path) -> None:
    bundle = _copy(tmp_path)
    holder = PolicyHolder(bundle)
    before = holder.current.version
    (bundle / "sanctions").mkdir()
    (bundle / "sanctions" / "extra.yaml").write_text(DENY_DE)
    result = await holder.reload()
    assert not result.ok and holder.current.version == before
    summary = holder.last_refused_summary()
    assert summary is not None and any(STRAY in e for e in summary["errors"])


async def test_admin_validate_reads_candidate_paths_as_the_disk_would() -> None:
    actor: Any = None
    files = dict(
        MINIMAL,
        **{
            "sanctions/extra.yaml": DENY_DE,
            "extra.YAML": "rules: []\n",
            "tests/t.yaml": "cases: []\n",
        },
    )
    body = await validate_policy(CandidateBundle(files=files), actor)
    assert not body["ok"]
    assert body["errors"] == [
        STRAY + " (only tests/ may hold YAML, the policy tests); "
        "move it up to merge it, or out of the directory"
    ]


async def test_the_watch_sees_a_file_added_to_an_existing_sub_directory(tmp_path: Path) -> None:
    # The watch was not recursive: a file added inside sanctions/ raised no
    # event, so the refusal waited for the next top-level edit.
    import asyncio

    bundle = _copy(tmp_path)
    (bundle / "sanctions").mkdir()
    (bundle / "sanctions" / "notes.txt").write_text("not YAML\n")
    holder = PolicyHolder(bundle, debounce_ms=100)
    await holder.start(watch=True)
    try:
        await asyncio.sleep(0.3)  # let the watcher subscribe
        (bundle / "sanctions" / "extra.yaml").write_text(DENY_DE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while holder.last_refused_summary() is None and loop.time() < deadline:
            await asyncio.sleep(0.05)
        summary = holder.last_refused_summary()
        assert summary is not None, "the watch did not reload within 3 s"
        assert any(STRAY in e for e in summary["errors"])
    finally:
        await holder.stop()
