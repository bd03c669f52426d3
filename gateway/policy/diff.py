"""``gateway policy diff OLD NEW``: what a reviewer needs to know about a change.

Compares two validated bundles section by section and says it in words:
rules added/removed/changed (which fields, old -> new), country groups with
the countries and regions added or removed, tiers, models (tier lists,
upstream), capabilities and quotas limit by limit.

A rule's ``mode`` change is the one a reviewer must not miss: it is said
first, in capitals (``now ENFORCED``: from this bundle on its matches decide
requests; ``now REPORT-ONLY``: they are only logged). A rule added in report
mode says so in its heading detail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gateway.policy import schema as s


@dataclass(frozen=True, slots=True)
class Change:
    section: str
    name: str
    kind: str
    """``added``, ``removed`` or ``changed``."""
    details: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        head = f"{self.section}: {self.kind} {self.name}"
        return (
            head if not self.details else head + "\n" + "\n".join(f"    {d}" for d in self.details)
        )


def _short(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a JSON value by dotted path; lists are leaves (compared whole)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flat(sub, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: value}


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = _flat(old), _flat(new)
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if (
            isinstance(va, list)
            and isinstance(vb, list)
            and all(isinstance(x, str) for x in [*va, *vb])
        ):
            added = sorted(set(vb) - set(va))
            removed = sorted(set(va) - set(vb))
            parts = []
            if added:
                parts.append("added " + ", ".join(added))
            if removed:
                parts.append("removed " + ", ".join(removed))
            out.append(f"{key}: " + ("; ".join(parts) if parts else "reordered"))
        else:
            out.append(f"{key}: {_short(va)} -> {_short(vb)}")
    return out


def _dump(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def _describe(section: str, value: dict[str, Any]) -> tuple[str, ...]:
    if section == "country_groups":
        bits = []
        if value.get("countries"):
            bits.append("countries " + ", ".join(value["countries"]))
        if value.get("regions"):
            bits.append("regions " + ", ".join(value["regions"]))
        return tuple(bits)
    if section == "rules":
        keep = {
            k: v
            for k, v in value.items()
            if k in ("effect", "exempts", "in_flight", "when", "unless", "effective", "reason",
                     "legal_basis")
            and not (k == "in_flight" and v == "finish")  # the default, as mode's
        }
        described = tuple(f"{k}: {_short(v)}" for k, v in keep.items())
        if value.get("mode") == "report":
            return ("mode: report (logged only, never decides)", *described)
        return described
    return tuple(f"{k}: {_short(v)}" for k, v in _flat(value).items())


def _compare(section: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out = []
    for name in [n for n in old if n not in new]:
        out.append(Change(section, name, "removed", _describe(section, old[name])))
    for name in [n for n in new if n not in old]:
        out.append(Change(section, name, "added", _describe(section, new[name])))
    for name in [n for n in new if n in old]:
        details = _field_changes(old[name], new[name])
        if section == "rules":
            details = _mode_first(old[name], new[name], details)
        if details:
            out.append(Change(section, name, "changed", tuple(details)))
    return out


_MODE_CHANGE = {
    ("report", "enforce"): "now ENFORCED (was report-only): its matches decide requests",
    ("enforce", "report"): "now REPORT-ONLY (was enforced): its matches are only logged",
}


def _mode_first(old: dict[str, Any], new: dict[str, Any], details: list[str]) -> list[str]:
    """Say a rule's mode change in words, before its other changes."""
    key = (old.get("mode", "enforce"), new.get("mode", "enforce"))
    if key not in _MODE_CHANGE:
        return details
    return [_MODE_CHANGE[key], *(d for d in details if not d.startswith("mode: "))]


def diff_bundles(old: s.Bundle, new: s.Bundle) -> list[Change]:
    """Every difference between two bundles, in reading order."""
    changes: list[Change] = []
    if old.kyc_levels != new.kyc_levels:
        changes.append(
            Change(
                "kyc_levels",
                "order",
                "changed",
                (f"{' < '.join(old.kyc_levels)} -> {' < '.join(new.kyc_levels)}",),
            )
        )
    if old.control_threshold_percent != new.control_threshold_percent:
        changes.append(
            Change(
                "control_threshold_percent",
                "",
                "changed",
                (f"{old.control_threshold_percent} -> {new.control_threshold_percent}",),
            )
        )
    for section in ("country_groups", "tiers", "models", "capabilities", "quotas"):
        a = {k: _dump(v) for k, v in getattr(old, section).items()}
        b = {k: _dump(v) for k, v in getattr(new, section).items()}
        changes.extend(_compare(section, a, b))
    rules_a = {r.id: _dump(r) for r in old.rules}
    rules_b = {r.id: _dump(r) for r in new.rules}
    changes.extend(_compare("rules", rules_a, rules_b))
    return changes
