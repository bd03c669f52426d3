"""A bundle's canonical content, and its version: the SHA-256 of that content."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gateway.policy import schema as s

_LATER_CONDITIONS = ("requests_logprobs", "requests_reasoning", "kyc_max_age_days")
"""Condition keys added after bundles were first versioned: left out of the
canonical content while unset, so a bundle that does not use them keeps its
version across the upgrade (as ``mode`` is, below)."""


def _drop_unset(value: Any) -> None:
    if isinstance(value, dict):
        for key in _LATER_CONDITIONS:
            if key in value and value[key] is None:
                del value[key]
        for item in value.values():
            _drop_unset(item)
    elif isinstance(value, list):
        for item in value:
            _drop_unset(item)


def bundle_version(bundle: s.Bundle) -> str:
    """SHA-256 of the canonical JSON of the merged content (``canonical_content``).

    Independent of file names, file order, key order, comments and formatting;
    rules are ordered by id and country lists sorted, since neither order
    changes a decision.
    """
    return hashlib.sha256(canonical_content(bundle).encode("utf-8")).hexdigest()


def canonical_content(bundle: s.Bundle) -> str:
    """The text a bundle's version is the SHA-256 of (UTF-8).

    The audit log keeps it in each ``policy_reload`` record, so the policy a
    recorded decision names by version can be retrieved and proven to be it.
    """
    data = bundle.model_dump(mode="json", by_alias=True)
    for rule in data["rules"]:
        # The default mode is left out, so a bundle without report rules keeps
        # the version it had before rules had a mode: recorded decisions still
        # name the bundle in force, and impact does not read the upgrade as drift.
        if rule.get("mode") == "enforce":
            del rule["mode"]
        if rule.get("in_flight") == "finish":
            del rule["in_flight"]
        if rule.get("exempts") is None:
            rule.pop("exempts", None)  # likewise: bundles without exemptions keep their version
    _drop_unset(data)
    data["rules"] = sorted(data["rules"], key=lambda r: r["id"])
    for group in data["country_groups"].values():
        group["countries"] = sorted(group["countries"])
        group["regions"] = sorted(group["regions"])
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

