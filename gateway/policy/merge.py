"""Merge a policy directory's files into one document, remembering where each piece came from.

Mapping sections (``country_groups``, ``tiers``, ``models``, ``capabilities``,
``quotas``) merge by name; ``rules`` concatenate in file-name order; scalar
sections (``kyc_levels``, ``control_threshold_percent``) live in one file. A
name defined in two files is an error: a reviewer must see one definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gateway.policy import schema as s
from gateway.policy.files import bundle_files
from gateway.policy.yamlsrc import DataPath, PolicyError, SourceMap, parse_file

MAPPING_SECTIONS: dict[str, type[BaseModel]] = {
    "country_groups": s.CountryGroup,
    "tiers": s.Tier,
    "models": s.Model,
    "capabilities": s.Capability,
    "quotas": s.TierQuota,
}
"""Sections merged by name, and the model each item validates against."""


def merge_files(files: list[Path]) -> tuple[dict[str, Any], SourceMap, list[PolicyError], bool]:
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
            if value is None and (key in MAPPING_SECTIONS or key == "rules"):
                continue  # an empty section (`rules:` with nothing under it) adds nothing
            if key in MAPPING_SECTIONS:
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
                    source.rule_in_file[target] = index
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
    # The file's line entries under each item, found in one pass: looking
    # them up by scanning every line once per item made merging quadratic
    # (a 5,000-model file took 16 s, held by policy validate and reload).
    item_lines: dict[Any, list[tuple[DataPath, int]]] = {}
    for p, line in lines.items():
        if len(p) >= 2 and p[0] == key:
            item_lines.setdefault(p[1], []).append((p, line))
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
        for p, line in item_lines.get(item_name, ()):
            source.lines[p] = (name, line)



def rule_locations(directory: Path) -> tuple[tuple[str, str, int] | None, ...]:
    """``(rule id, file, line)`` of each rule of the merged bundle, in declaration
    order (the order ``CompiledRule.index`` counts): what ``policy explain`` cites.

    Parsed and merged exactly as ``load_dir`` does, without validating; the id
    lets a caller check the files still hold the bundle it compiled."""
    merged, source, _, _ = merge_files(bundle_files(directory))
    out: list[tuple[str, str, int] | None] = []
    for i, rule in enumerate(merged.get("rules", [])):
        where = source.lines.get(("rules", i))
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        out.append(None if where is None or not isinstance(rule_id, str) else (rule_id, *where))
    return tuple(out)
