"""Load a policy directory: merge its files, validate, report every error at once.

    result = load_dir(Path("policies"))      # LoadResult: bundle or errors, never raises
    bundle = load_bundle(Path("policies"))   # CompiledBundle, or PolicyLoadError

All ``*.yaml``/``*.yml`` files directly in the directory are merged, the
extension in any case; ``tests/`` holds policy tests, and a YAML file in any
other sub-directory refuses the bundle, naming it (``files.py``). Mapping sections
(``country_groups``, ``tiers``, ``models``, ``capabilities``, ``quotas``) merge
by name; ``rules`` concatenate in file-name order; scalar sections
(``kyc_levels``, ``control_threshold_percent``) live in one file. A name
defined in two files is an error: a reviewer must see one definition.

Each section is validated item by item, so one bad rule does not hide the
next one's errors; cross references are then checked on the items that
parsed (semantics in ``checks.py``). Errors read
``rules.yaml:14 rules[2].when.origin_in: unknown country group 'sanctioned'``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from gateway.policy import schema as s
from gateway.policy.checks import QUOTA_CAPABILITY_KEYS, Leftovers, check_bundle
from gateway.policy.compiled import CompiledBundle, compile_bundle
from gateway.policy.files import STRAY_MESSAGE, bundle_files, stray_files
from gateway.policy.keyhints import not_a_mapping_message, unknown_key_message
from gateway.policy.yamlsrc import DataPath, PolicyError, SourceMap, format_path, parse_file

_MAPPING_SECTIONS: dict[str, type[BaseModel]] = {
    "country_groups": s.CountryGroup,
    "tiers": s.Tier,
    "models": s.Model,
    "capabilities": s.Capability,
    "quotas": s.TierQuota,
}
_SCALAR_SECTIONS = ("kyc_levels", "control_threshold_percent", "schema_version")


@dataclass(frozen=True, slots=True)
class LoadResult:
    bundle: s.Bundle | None
    version: str | None
    errors: tuple[PolicyError, ...]
    warnings: tuple[PolicyError, ...]
    files: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors and self.bundle is not None


class PolicyLoadError(Exception):
    """The bundle was refused; ``errors`` lists every problem found."""

    def __init__(self, directory: Path, errors: tuple[PolicyError, ...]) -> None:
        self.directory = directory
        self.errors = errors
        lines = "\n  ".join(str(e) for e in errors)
        super().__init__(f"policy bundle {directory} refused ({len(errors)} errors):\n  {lines}")


def load_dir(directory: Path) -> LoadResult:
    """Parse, merge and validate; never raises for problems in the bundle itself."""
    if not directory.is_dir():
        err = PolicyError(str(directory), None, "", "not a directory")
        return LoadResult(None, None, (err,), (), ())
    files = bundle_files(directory)
    # A file the loader would not read is an error, not a silent omission: a
    # deny rule one directory too deep must not look loaded.
    stray = [PolicyError(name, None, "", STRAY_MESSAGE) for name in stray_files(directory)]
    if not files:
        err = PolicyError(str(directory), None, "", "no policy files (*.yaml, *.yml)")
        return LoadResult(None, None, (err, *stray), (), ())
    merged, source, errors, unread = _merge(files)
    errors.extend(stray)
    bundle, leftovers, item_errors = _validate(merged, source)
    # A file that did not parse defines names nobody can see: "unknown model"
    # errors elsewhere would be follow-on noise, not findings.
    leftovers.names_incomplete = unread
    errors.extend(item_errors)
    check_errors, warnings = check_bundle(bundle, source, leftovers)
    errors.extend(check_errors)
    names = tuple(p.name for p in files)
    if errors:
        return LoadResult(None, None, tuple(_ordered(errors)), tuple(warnings), names)
    return LoadResult(bundle, bundle_version(bundle), (), tuple(warnings), names)


def load_bundle(directory: Path) -> CompiledBundle:
    """Load and compile, or raise PolicyLoadError naming every file:line problem."""
    result = load_dir(directory)
    if not result.ok or result.bundle is None or result.version is None:
        raise PolicyLoadError(directory, result.errors)
    return compile_bundle(result.bundle, result.version, warnings=tuple(map(str, result.warnings)))


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


def _ordered(errors: list[PolicyError]) -> list[PolicyError]:
    return sorted(errors, key=lambda e: (e.file, e.line or 0, e.path, e.message))


def _merge(files: list[Path]) -> tuple[dict[str, Any], SourceMap, list[PolicyError], bool]:
    """(merged data, where each piece came from, errors, whether a file could not be read)."""
    merged: dict[str, Any] = {}
    source = SourceMap()
    errors: list[PolicyError] = []
    unread = False
    for path in files:
        parsed = parse_file(path)
        errors.extend(parsed.errors)
        if parsed.data is None:
            unread = unread or bool(parsed.errors)
            continue
        if not isinstance(parsed.data, dict):
            unread = True
            errors.append(
                PolicyError(parsed.name, 1, "", "a policy file must be a mapping of sections")
            )
            continue

        def where(
            p: DataPath, parsed_lines: dict[DataPath, int] = parsed.lines, name: str = parsed.name
        ) -> tuple[str, int]:
            return (name, parsed_lines.get(p, 1))

        for key, value in parsed.data.items():
            if key not in s.SECTION_NAMES:
                errors.append(
                    PolicyError(
                        parsed.name,
                        where((key,))[1],
                        key,
                        f"unknown top-level key '{key}' (expected one of "
                        f"{', '.join(s.SECTION_NAMES)})",
                    )
                )
                continue
            if value is None and (key in _MAPPING_SECTIONS or key == "rules"):
                continue  # an empty section (`rules:` with nothing under it) adds nothing
            if key in _MAPPING_SECTIONS:
                _merge_mapping(key, value, parsed.lines, parsed.name, merged, source, errors)
            elif key == "rules":
                if not isinstance(value, list):
                    errors.append(
                        PolicyError(parsed.name, where((key,))[1], key, "must be a list of rules")
                    )
                    continue
                rules = merged.setdefault("rules", [])
                source.lines.setdefault(("rules",), where(("rules",)))
                for index, rule in enumerate(value):
                    target = len(rules)
                    rules.append(rule)
                    for p, line in parsed.lines.items():
                        if p[:2] == ("rules", index):
                            source.lines[("rules", target, *p[2:])] = (parsed.name, line)
            else:  # scalar sections: one definition only
                if key in merged and not (key == "schema_version" and merged[key] == value):
                    first = source.lines[(key,)]
                    errors.append(
                        PolicyError(
                            parsed.name,
                            where((key,))[1],
                            key,
                            f"already defined in {first[0]}:{first[1]}",
                        )
                    )
                    continue
                merged[key] = value
                for p, line in parsed.lines.items():
                    if p[:1] == (key,):
                        source.lines.setdefault(p, (parsed.name, line))
    return merged, source, errors, unread


def _merge_mapping(
    key: str,
    value: Any,
    lines: dict[DataPath, int],
    name: str,
    merged: dict[str, Any],
    source: SourceMap,
    errors: list[PolicyError],
) -> None:
    if not isinstance(value, dict):
        errors.append(PolicyError(name, lines.get((key,), 1), key, "must be a mapping of names"))
        return
    section = merged.setdefault(key, {})
    source.lines.setdefault((key,), (name, lines.get((key,), 1)))
    for item_name, item in value.items():
        if item_name in section:
            first = source.lines[(key, item_name)]
            errors.append(
                PolicyError(
                    name,
                    lines.get((key, item_name), 1),
                    f"{key}.{item_name}",
                    f"'{item_name}' is already defined in {first[0]}:{first[1]}",
                )
            )
            continue
        section[item_name] = item
        for p, line in lines.items():
            if p[:2] == (key, item_name):
                source.lines[p] = (name, line)


def _validate(
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
    for key, model in _MAPPING_SECTIONS.items():
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
        out.append(PolicyError(file, line, format_path(path), "; or ".join(messages)))
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


def rule_locations(directory: Path) -> tuple[tuple[str, str, int] | None, ...]:
    """``(rule id, file, line)`` of each rule of the merged bundle, in declaration
    order (the order ``CompiledRule.index`` counts): what ``policy explain`` cites.

    Parsed and merged exactly as ``load_dir`` does, without validating; the id
    lets a caller check the files still hold the bundle it compiled."""
    merged, source, _, _ = _merge(bundle_files(directory))
    out: list[tuple[str, str, int] | None] = []
    for i, rule in enumerate(merged.get("rules", [])):
        where = source.lines.get(("rules", i))
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        out.append(None if where is None or not isinstance(rule_id, str) else (rule_id, *where))
    return tuple(out)
