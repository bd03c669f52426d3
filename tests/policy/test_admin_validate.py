"""POST /admin/v1/policy/validate, called directly: the candidate's file names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import HTTPException

from gateway.admin.policy import CandidateBundle, validate_policy
from tests.policy.conftest import MINIMAL


async def test_same_path_twice_is_refused_not_overwritten() -> None:
    # "a.yaml" and "./a.yaml" name one file: one would silently win.
    files = dict(MINIMAL, **{"a.yaml": "rules: []\n", "./a.yaml": "rules: oops\n"})
    actor: Any = None
    with pytest.raises(HTTPException) as info:
        await validate_policy(CandidateBundle(files=files), actor)
    assert info.value.status_code == 422
    assert "a.yaml and ./a.yaml" in str(info.value.detail)


async def test_paths_are_kept_so_sub_directories_are_judged_as_on_disk() -> None:
    # sub/a.yaml and other/a.yaml used to be flattened to a.yaml (and one
    # refused as a duplicate), so a file the disk loader would never read was
    # validated as part of the bundle. Both are now refused by name.
    files = dict(MINIMAL, **{"sub/a.yaml": "rules: []\n", "other/a.yaml": "rules: oops\n"})
    actor: Any = None
    body = await validate_policy(CandidateBundle(files=files), actor)
    assert not body["ok"]
    assert [e.split(":")[0] for e in body["errors"]] == ["other/a.yaml", "sub/a.yaml"]
    for bad in ("../a.yaml", "/etc/a.yaml"):
        with pytest.raises(HTTPException) as info:
            await validate_policy(CandidateBundle(files={bad: "rules: []\n"}), actor)
        assert info.value.status_code == 422


async def test_distinct_names_validate() -> None:
    actor: Any = None
    body = await validate_policy(CandidateBundle(files=dict(MINIMAL)), actor)
    assert body["ok"], body


async def test_a_tests_file_is_a_policy_test_not_a_policy_file() -> None:
    """As on disk: ``tests/`` holds policy tests, which the loader does not merge (the
    route once flattened ``tests/a.yaml`` into ``a.yaml``: 'unknown top-level key
    cases')."""
    actor: Any = None
    cases = "cases:\n  - name: x\n    principal: {tier: public}\n"
    body = await validate_policy(CandidateBundle(files=dict(MINIMAL, **{"tests/a.yaml": cases})),
                                 actor)
    assert body["ok"] and body["errors"] == [], body
    # A policy file and a test file may share a base name: they are different files.
    files = dict(MINIMAL, **{"tests/rules.yaml": cases})
    assert (await validate_policy(CandidateBundle(files=files), actor))["ok"]


async def test_errors_name_the_bundle_not_the_servers_temporary_directory() -> None:
    actor: Any = None
    for files in ({}, {"tests/a.yaml": "cases: []\n"}):
        body = await validate_policy(CandidateBundle(files=files), actor)
        assert body["errors"] == ["<bundle>: no policy files (*.yaml, *.yml)"], body
    broken = await validate_policy(CandidateBundle(files={"rules.yaml": "rules: [\n"}), actor)
    assert broken["errors"][0].startswith("rules.yaml:2: YAML syntax error")
    assert not any("gateway-policy-" in e or "/tmp" in e for e in broken["errors"])


async def test_text_that_is_not_utf8_is_a_422_naming_the_file() -> None:
    actor: Any = None
    with pytest.raises(HTTPException) as info:
        await validate_policy(CandidateBundle(files=dict(MINIMAL, **{"x.yaml": "\udcff"})),
                              actor)
    assert (info.value.status_code, info.value.detail) == (422, "x.yaml: not valid UTF-8 text")


async def test_a_nul_in_a_file_name_is_a_422_not_a_500() -> None:
    """JSON carries ``\\u0000``; no file name can. The name was joined onto the
    temporary directory and opened: ``ValueError: embedded null byte``, which
    no handler caught (500), on validate and on today's test and impact routes."""
    from gateway.admin.policy_reports import _test_files

    actor: Any = None
    files = dict(MINIMAL, **{"a\x00.yaml": "rules: []\n"})
    # The test route lays the files out in _test_files, in a worker thread
    # (the route itself also takes the services and a session: the action log).
    for check in (validate_policy(CandidateBundle(files=files), actor),
                  asyncio.to_thread(_test_files, files)):  # fmt: skip
        with pytest.raises(HTTPException) as info:
            await check
        assert info.value.status_code == 422, check
        assert "a\\x00.yaml" in str(info.value.detail) or "a\x00.yaml" in str(info.value.detail)
