"""The text ``gateway policy explain`` prints (``--json`` prints the document itself)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console

from gateway.policy.explain import Explanation


def print_explanation(console: Console, ex: Explanation, doc: dict[str, Any]) -> None:
    out = console.print
    p, o = doc["principal"], doc["origin"]
    place = o["region"] or o["country"] or "unknown origin"
    out(f"{doc['decision'].upper()} {doc['status']}  {doc['request']['model']} for {p['id']} "
        f"from {place} at {doc['at']} (policy {doc['policy_version'][:12]})", markup=False,
        style="green" if ex.decision.allowed else "red")  # fmt: skip
    out(f"  rules: {', '.join(doc['rule_ids'])}", markup=False)
    for reason in doc["reasons"]:
        out(f"  reason: {reason}", markup=False)
    if doc["report_rule_ids"]:
        out(f"  report mode matches: {', '.join(doc['report_rule_ids'])}", markup=False)
    out(f"  customer: {p['id']}  tier {p['tier']} (effective {doc['effective_tier']})  "
        f"kyc {p['kyc_level']}  citizenships: {', '.join(p['citizenships']) or 'none'}  "
        f"residence: {p['residence'] or 'none'}  US person: {'yes' if p['us_person'] else 'no'}  "
        f"sanctions: {p['sanctions_status']}  status: {p['status']}", markup=False)  # fmt: skip
    if doc["tier_demotion"]:
        out(f"  tier demoted to {doc['effective_tier']}: {doc['tier_demotion']}", markup=False)
    out(f"  capabilities: {', '.join(doc['capabilities']) or 'none'}", markup=False)
    m = doc["model"]
    entitlement = (
        f"model {m['name']} is not defined in this bundle" if not m["defined"]
        else f"model {m['name']} is offered to tiers {', '.join(m['tiers'])}: effective tier "
        f"{doc['effective_tier']} is {'' if m['entitled'] else 'not '}entitled"
    )  # fmt: skip
    out(f"  {entitlement}", markup=False)
    q = doc["quota"]
    limits = ", ".join(f"{x['capability']}.{x['kind']} {x['limit']}" for x in q["limits"])
    out(f"  quota plan ({q['tier']}): {limits or 'no limits'}", markup=False)
    _usage(console, q)
    scope = doc["key_scope"]
    if scope["key"] is not None:
        _key(console, scope["key"], doc)
    else:
        out(f"  key scope: {scope['note']}", markup=False)
    for key in scope["keys"]:
        limits = ", ".join(
            f"{what} {', '.join(key[field])}"
            for what, field in (
                ("models", "allowed_models"),
                ("capabilities", "allowed_capabilities"),
            )
            if key[field] is not None
        )
        verdict = f"refuses: {key['refuses']}" if key["refuses"] else "lets it through"
        out(f"    key {key['key_id']} ({limits}): {verdict}", markup=False)
    for rule_id, control in (doc["ownership_control"] or {}).items():
        out(f"  control ({rule_id}): {control['share_percent']:g}% "
            f"(threshold {control['threshold_percent']:g}%) through "
            f"{'; '.join(control['paths'])}", markup=False)  # fmt: skip
    if not doc["trace_agrees"]:
        out("  warning: the rule-by-rule trace disagrees with the engine; please report",
            markup=False, style="red")  # fmt: skip
    out("trace (rule order):", markup=False)
    for r in ex.trace:
        where = f"{r.file}:{r.line}" if r.file else "(source unknown)"
        window = _window(r.start, r.end)
        force = "in force" if r.in_force else f"not in force at {doc['at']}"
        mode = " report mode" if r.mode == "report" else ""
        state = "matched" if r.matched else "no match"
        if r.outcome not in (state, "no match"):
            state = f"{state} → {r.outcome}"
        out(f"  {r.id}  {where}  {r.effect}{mode}  {force}{window}  {state}", markup=False)
        for c in r.when:
            _condition(console, "when", c.text(), c.parts, 6)
        for c in r.unless or ():
            _condition(console, "unless", c.text(), c.parts, 6)


def _usage(console: Console, quota: dict[str, Any]) -> None:
    usage = quota["usage"]
    if usage["source"] is None:
        console.print(f"  quota use: {usage['note']}", markup=False)
        return
    console.print(f"  quota use ({usage['source']} store, read {usage['read_at']}):",
                  markup=False)  # fmt: skip
    for x in quota["limits"]:
        if "used" not in x:
            continue
        resets = f", resets {x['resets_at']} (in {x['reset_seconds']}s)" if x["resets_at"] else ""
        console.print(f"    {x['capability']}.{x['kind']}: {x['used']} of {x['limit']} used, "
                      f"{x['remaining']} remaining{resets}", markup=False)  # fmt: skip


def _key(console: Console, key: dict[str, Any], doc: dict[str, Any]) -> None:
    """The key named by --key: whether it is live at --at, then its scope check."""
    out = console.print
    name = f" ({key['name']})" if key["name"] else ""
    when = {"revoked": key["revoked_at"], "expired": key["expires_at"],
            "not yet created": key["created_at"]}.get(key["state"])  # fmt: skip
    state = key["state"]
    if when is not None:
        state = f"{state} ({'created' if state == 'not yet created' else state} at {when}): " \
                "refused with 401"
    out(f"  key {key['prefix']}{name} of {key['customer_id']}: {state}", markup=False)
    for check in key["checks"]:
        out(f"      scope {check['text']}", markup=False)
    refuses = f": {key['refuses']}" if key["refuses"] else ""
    out(f"    scope check: {key['outcome']}{refuses}", markup=False)
    if doc["policy_decision"] is not None:
        policy = doc["policy_decision"]
        out(f"    the policy alone, had the key been live: {policy['decision']} "
            f"({', '.join(policy['rule_ids'])})", markup=False)  # fmt: skip


def _window(start: datetime | None, end: datetime | None) -> str:
    from gateway.kyc.schemas import rfc3339

    parts = [f"from {rfc3339(start)}" if start else "", f"until {rfc3339(end)}" if end else ""]
    text = " ".join(p for p in parts if p)
    return f" ({text})" if text else ""


def _condition(console: Console, label: str, text: str, parts: Any, indent: int) -> None:
    console.print(f"{' ' * indent}{label} {text}", markup=False)
    for part in parts:
        _condition(console, "-", part.text(), part.parts, indent + 2)
