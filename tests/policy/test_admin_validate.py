"""POST /admin/v1/policy/validate, called directly: the candidate's file names."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import HTTPException

from gateway.admin.policy import CandidateBundle, validate_policy
from tests.policy.conftest import MINIMAL


async def test_same_base_name_twice_is_refused_not_overwritten() -> None:
    # sub/a.yaml and other/a.yaml were both written to a.yaml: one silently won.
    files = dict(MINIMAL, **{"sub/a.yaml": "rules: []\n", "other/a.yaml": "rules: oops\n"})
    actor: Any = None
    with pytest.raises(HTTPException) as info:
        await validate_policy(CandidateBundle(files=files), actor)
    assert info.value.status_code == 422
    assert "sub/a.yaml and other/a.yaml" in str(info.value.detail)


async def test_distinct_names_validate() -> None:
    actor: Any = None
    body = await validate_policy(CandidateBundle(files=dict(MINIMAL)), actor)
    assert body["ok"], body
