"""PolicyHolder: atomic swap on reload, refused reloads keep the old bundle, file watching."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from gateway.policy.compiled import CompiledBundle
from gateway.policy.holder import PolicyHolder
from gateway.policy.loader import PolicyLoadError
from tests.policy.conftest import POLICIES

NEW_RULE = "rules:\n  - {id: freeze-haiku, effect: deny, when: {model_in: haiku-lite}}\n"


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


async def test_initial_load_failure_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(POLICIES, bad)
    (bad / "zz.yaml").write_text(
        "rules:\n  - id: x\n    effect: deny\n    when: {origin_in: nowhere}\n"
    )
    with pytest.raises(
        PolicyLoadError,
        match=r"zz.yaml:4 rules\[\d+\].when.origin_in: "
        r"unknown country group 'nowhere'",
    ):
        PolicyHolder(bad)


async def test_reload_swaps_and_reports(bundle_dir: Path) -> None:
    swaps: list[tuple[str | None, str]] = []

    async def on_swap(old: str | None, new: CompiledBundle) -> None:
        swaps.append((old, new.version))

    holder = PolicyHolder(bundle_dir, on_swap=on_swap)
    await holder.start(watch=False)
    first = holder.current
    assert swaps == [(None, first.version)]

    same = await holder.reload()
    assert same.ok and not same.changed and holder.current is first

    (bundle_dir / "zz-extra.yaml").write_text(NEW_RULE)
    result = await holder.reload()
    assert result.ok and result.changed and result.version != first.version
    assert holder.current.version == result.version
    assert swaps[-1] == (first.version, result.version)
    assert "freeze-haiku" in {r.id for r in holder.current.rules}
    assert first.version != holder.current.version  # the old snapshot is untouched
    assert "freeze-haiku" not in {r.id for r in first.rules}
    await holder.stop()


async def test_broken_edit_keeps_running_bundle(bundle_dir: Path) -> None:
    refused = []

    async def on_refused(result: object) -> None:
        refused.append(result)

    holder = PolicyHolder(bundle_dir, on_refused=on_refused)
    before = holder.current
    (bundle_dir / "rules.yaml").write_text(
        "rules:\n  - id: broken\n    effect: deny\n    when: {tier_in: [gold]}\n"
    )
    result = await holder.reload()
    assert not result.ok and holder.current is before and result.version == before.version
    assert any(
        "rules.yaml:4 rules[0].when.tier_in[0]: unknown tier 'gold'" in e for e in result.errors
    )
    summary = holder.last_refused_summary()
    assert summary is not None and summary["errors"] == list(result.errors)
    assert len(refused) == 1


async def test_swap_refused_when_it_cannot_be_recorded(bundle_dir: Path) -> None:
    async def failing(old: str | None, new: CompiledBundle) -> None:
        if old is not None:
            raise RuntimeError("audit down")

    holder = PolicyHolder(bundle_dir, on_swap=failing)
    await holder.start(watch=False)
    before = holder.current
    (bundle_dir / "zz-extra.yaml").write_text(NEW_RULE)
    result = await holder.reload()
    assert not result.ok and holder.current is before
    assert "could not record the swap" in result.errors[0]


async def test_file_change_triggers_reload_within_two_seconds(bundle_dir: Path) -> None:
    holder = PolicyHolder(bundle_dir, debounce_ms=100)
    await holder.start(watch=True)
    try:
        before = holder.current.version
        await asyncio.sleep(0.3)  # let the watcher subscribe
        (bundle_dir / "zz-extra.yaml").write_text(NEW_RULE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while holder.current.version == before and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert holder.current.version != before, "watcher did not reload within 2 s"
    finally:
        await holder.stop()


async def _wait_for_change(holder: PolicyHolder, before: str, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while holder.current.version == before and loop.time() < deadline:
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("how", ["rm-and-copy", "rename-swap"])
async def test_watch_survives_the_directory_being_replaced(
    bundle_dir: Path, tmp_path: Path, how: str
) -> None:
    # inotify watches the inode: a deleted-and-recreated (or swapped) directory
    # used to leave the watch on the dead one, silently ending hot reload.
    holder = PolicyHolder(bundle_dir, debounce_ms=100)
    await holder.start(watch=True)
    try:
        before = holder.current.version
        await asyncio.sleep(0.3)  # let the watcher subscribe
        staged = tmp_path / "staged"
        shutil.copytree(POLICIES, staged)
        (staged / "zz-extra.yaml").write_text(NEW_RULE)
        if how == "rm-and-copy":
            shutil.rmtree(bundle_dir)
            await asyncio.sleep(0.3)
            shutil.copytree(staged, bundle_dir)
        else:
            old = tmp_path / "old"
            bundle_dir.rename(old)
            staged.rename(bundle_dir)
        await _wait_for_change(holder, before, 5.0)
        assert holder.current.version != before, "watch did not follow the new directory"
        assert "freeze-haiku" in {r.id for r in holder.current.rules}
        # ...and it keeps watching the new directory for ordinary edits.
        second = holder.current.version
        (bundle_dir / "zz-extra.yaml").unlink()
        await _wait_for_change(holder, second, 5.0)
        assert holder.current.version == before
    finally:
        await holder.stop()


async def test_fixing_files_back_clears_the_last_refusal(bundle_dir: Path) -> None:
    holder = PolicyHolder(bundle_dir)
    rules = (bundle_dir / "rules.yaml").read_text()
    (bundle_dir / "rules.yaml").write_text("rules:\n  - {id: x, effect: nope, when: {}}\n")
    assert not (await holder.reload()).ok
    assert holder.last_refused_summary() is not None
    (bundle_dir / "rules.yaml").write_text(rules)  # back to the running version
    result = await holder.reload()
    assert result.ok and not result.changed
    assert holder.last_refused_summary() is None
