"""Which policy bundle was in force when: the ``policy_reload`` and
``policy_refused`` records of the log, as ``gateway audit policies`` prints
them and ``GET /admin/v1/audit/policies`` answers them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson


def upcoming(loaded: datetime, payload: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(rule id, "from" or "until", instant)`` of the loaded bundle's rule
    windows that open or close after the load.

    The version does not change at a directive's ``effective.from``: only the
    deciding rule does, so the timeline says when (from the bundle text the
    record carries; none for records written before the log kept texts)."""
    try:
        rules = orjson.loads(payload.get("bundle") or "{}").get("rules") or []
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return []
    out = []
    for rule in rules:
        window = rule.get("effective") if isinstance(rule, dict) else None
        if not isinstance(window, dict):
            continue
        for key in ("from", "until"):
            value = window.get(key)
            if isinstance(value, str) and _after(value, loaded):
                out.append((str(rule.get("id")), key, value))
    return out


def _after(value: str, instant: datetime) -> bool:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) > instant
    except ValueError:
        return False


def rfc3339(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def event_document(ts: datetime, node: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One load or refusal, with what the CLI's line says (the bundle text itself:
    ``GET /admin/v1/audit/policies/{version}``)."""
    doc: dict[str, Any] = {"ts": rfc3339(ts), "node": node, "kind": kind}
    if kind == "policy_reload":
        doc["old_version"] = payload.get("old_version")
        doc["new_version"] = payload.get("new_version")
        doc["upcoming"] = [{"rule_id": rule, "at": key, "instant": value}
                           for rule, key, value in upcoming(ts, payload)]  # fmt: skip
        return doc
    errors = payload.get("errors") or []
    doc["kept_version"] = payload.get("kept_version")
    doc["errors_total"] = payload.get("errors_total", len(errors))
    doc["errors"] = list(errors)
    return doc
