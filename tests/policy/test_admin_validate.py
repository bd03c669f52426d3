"""POST /admin/v1/policy/validate, called directly: the candidate's file names."""

from __future__ import annotations

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
