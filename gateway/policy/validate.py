"""Validate merged policy data item by item, so one bad item does not hide the next one's errors.

An item that fails is left out of the bundle, and what is still known of it
(its name, its fields that are valid on their own) goes to the cross-reference
checks (``checks.py``) as ``Leftovers``. Pydantic's errors are reworded and
located at the file and line the officer wrote.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from gateway.policy import schema as s
from gateway.policy.checks import QUOTA_CAPABILITY_KEYS, Leftovers
from gateway.policy.keyhints import not_a_mapping_message, unknown_key_message
from gateway.policy.merge import MAPPING_SECTIONS
from gateway.policy.yamlsrc import DataPath, PolicyError, SourceMap, format_path

_SCALAR_SECTIONS = ("kyc_levels", "control_threshold_percent", "schema_version")


def validate_items(
    merged: dict[str, Any], source: SourceMap
) -> tuple[s.Bundle, Leftovers, list[PolicyError]]:
    """(bundle of the items that parsed, what is known of the others, errors).

    An item that fails its type check is left out of the bundle; ``Leftovers``
    keeps its name (still defined, so no misleading "unknown" errors follow),
    its fields that are valid on their own (still cross-checked, so errors in
    them are not hidden behind the first one) and the kept rules' original
    indices (so every later error names the rule and line the officer wrote).
    A top-level setting that fails (``schema_version``, ``kyc_levels``,
    ``control_threshold_percent``) falls back to its default for the checks,
    which still run: the bundle is refused anyway, with every error.
    """
    errors: list[PolicyError] = []
    left = Leftovers()
    capabilities = set(merged.get("capabilities", {}))
    parts: dict[str, Any] = {}
    for key, model in MAPPING_SECTIONS.items():
        good: dict[str, BaseModel] = {}
        for name, item in merged.get(key, {}).items():
            if key == "quotas":
                skip = _unknown_quota_keys(item, capabilities)
                obj = _item(model, item, (key, name), source, errors, skip)
            else:
                obj = _item(model, item, (key, name), source, errors)
            if obj is not None:
                good[name] = obj
                continue
            left.invalid_names.setdefault(key, set()).add(name)
            fields = _salvage(model, item)
            if key == "quotas" and isinstance(item, dict):
                fields[QUOTA_CAPABILITY_KEYS] = [k for k in item if k not in model.model_fields]
            left.failed.setdefault(key, []).append((name, fields))
        parts[key] = good
    good_rules: list[s.Rule] = []
    rule_index: list[int] = []
    for index, item in enumerate(merged.get("rules", [])):
        rule = _item(s.Rule, item, ("rules", index), source, errors)
        if rule is not None:
            good_rules.append(rule)  # type: ignore[arg-type]
            rule_index.append(index)
        else:
            left.failed.setdefault("rules", []).append((index, _salvage(s.Rule, item)))
    parts["rules"] = good_rules
    left.rule_index = rule_index
    scalars: dict[str, Any] = {}
    for key in _SCALAR_SECTIONS:
        if key not in merged:
            continue
        one = {key: merged[key]}
        try:
            s.Bundle.model_validate(one)
        except ValidationError as exc:
            errors.extend(_pydantic_errors(exc, (), one, source))
            if key == "kyc_levels":
                # Levels that are names still count as defined.
                levels = merged[key]
                if isinstance(levels, list):
                    scalars[key] = [level for level in levels if isinstance(level, str)]
                else:
                    left.kyc_levels_unusable = True
            continue
        scalars[key] = merged[key]
    head = s.Bundle.model_validate(scalars)
    return head.model_copy(update=parts), left, errors


def _unknown_quota_keys(item: Any, capabilities: set[str]) -> set[str]:
    # A quota key that is neither a field nor a capability is reported once, by
    # the checks, as "unknown capability ... (known: ...)": the type error of
    # its value (say, "a valid dictionary") would only hide that.
    if not isinstance(item, dict):
        return set()
    return {k for k in item if k not in s.TierQuota.model_fields and k not in capabilities}


_FIELD_ADAPTERS: dict[tuple[type[BaseModel], str], TypeAdapter[Any]] = {}


def _salvage(model: type[BaseModel], item: Any) -> dict[str, Any]:
    """The fields of a failed item that are valid on their own, by field name."""
    if not isinstance(item, dict):
        return {}
    by_key = {(f.alias or name): name for name, f in model.model_fields.items()}
    out: dict[str, Any] = {}
    for key, value in item.items():
        name = by_key.get(key)
        if name is None:
            continue
        adapter = _FIELD_ADAPTERS.get((model, name))
        if adapter is None:
            info = model.model_fields[name]
            # The field's constraints (ge=0, pattern=...) live in its metadata.
            hint: Any = (
                Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
            )
            adapter = TypeAdapter(hint)
            _FIELD_ADAPTERS[(model, name)] = adapter
        try:
            out[name] = adapter.validate_python(value, strict=True)
        except ValidationError:
            condition = _CONDITIONS.get((model, name))
            if condition is not None and isinstance(value, dict):
                # A condition with one bad key: its other keys are still checked.
                out[name] = condition.model_construct(**_salvage(condition, value))
    return out


_CONDITIONS: dict[tuple[type[BaseModel], str], type[BaseModel]] = {
    (s.Rule, "when"): s.Condition,
    (s.Rule, "unless"): s.Condition,
    (s.Condition, "not_"): s.Condition,
    (s.Capability, "when"): s.BodyCondition,
    (s.BodyCondition, "not_"): s.BodyCondition,
}


def _item(
    model: type[BaseModel],
    item: Any,
    path: DataPath,
    source: SourceMap,
    errors: list[PolicyError],
    skip: set[str] | None = None,
) -> BaseModel | None:
    """The validated item, or None with its errors (except those under ``skip`` keys)."""
    if item is None:
        item = {}
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        found = _pydantic_errors(exc, path, item, source)
        if skip:
            hidden = {format_path((*path, key)) for key in skip}
            found = [
                e
                for e in found
                if not any(e.path == h or e.path.startswith((h + ".", h + "[")) for h in hidden)
            ]
        errors.extend(found)
        return None


def _pydantic_errors(
    exc: ValidationError, prefix: DataPath, data: Any, source: SourceMap
) -> list[PolicyError]:
    """Map pydantic errors onto data paths; merge a union's alternatives into one line."""
    grouped: dict[DataPath, list[str]] = {}
    for err in exc.errors():
        path = _clean_loc(err["loc"], data, keep_last=err["type"] == "missing")
        message = pydantic_message(err)
        bucket = grouped.setdefault((*prefix, *path), [])
        if message not in bucket:
            bucket.append(message)
    # A union (``str | list[str]``) reports both alternatives: for a list with
    # a bad item, "should be a string" at the list is noise beside the item's
    # own error, and the same message would be printed twice.
    for path in [p for p in grouped if any(len(q) > len(p) and q[: len(p)] == p for q in grouped)]:
        del grouped[path]
    out = []
    for path, messages in grouped.items():
        file, line = source.locate(path)
        out.append(PolicyError(file, line, source.format(path), "; or ".join(messages)))
    return out


def _clean_loc(loc: tuple[int | str, ...], data: Any, keep_last: bool) -> DataPath:
    """Drop pydantic's union-member tags (``str``, ``list[str]``) that are not data keys."""
    out: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        if isinstance(current, dict) and part in current:  # noqa: SIM114 - mypy narrows per branch
            current = current[part]
            out.append(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            out.append(part)
        elif keep_last and i == len(loc) - 1:
            out.append(part)
    return tuple(out)


def pydantic_message(err: Any, root: type[BaseModel] | None = None) -> str:
    """A pydantic error in the words the officer reads everywhere (loader and tests;
    ``root``: the model of a document that is not a bundle's, for key hints)."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return unknown_key_message(err["loc"], root)
    if kind in ("model_type", "dict_type"):
        return not_a_mapping_message(err.get("input"))
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")

