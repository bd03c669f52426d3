"""Load a policy directory: merge its files, validate, report every error at once.

    result = load_dir(Path("policies"))      # LoadResult: bundle or errors, never raises
    bundle = load_bundle(Path("policies"))   # CompiledBundle, or PolicyLoadError

All ``*.yaml``/``*.yml`` files directly in the directory are merged, the
extension in any case; ``tests/`` holds policy tests, and a YAML file in any
other sub-directory refuses the bundle, naming it (``files.py``). How sections
merge is in ``merge.py``.

Each section is validated item by item (``validate.py``), so one bad rule does
not hide the next one's errors; cross references are then checked on the items
that parsed (semantics in ``checks.py``). Errors read
``rules.yaml:14 rules[2].when.origin_in: unknown country group 'sanctioned'``.
The version of a bundle that loads is in ``canonical.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.policy import schema as s
from gateway.policy.canonical import bundle_version, canonical_content
from gateway.policy.checks import check_bundle
from gateway.policy.compiled import CompiledBundle, compile_bundle
from gateway.policy.files import STRAY_MESSAGE, bundle_files, stray_files
from gateway.policy.merge import merge_files, rule_locations
from gateway.policy.validate import pydantic_message, validate_items
from gateway.policy.yamlsrc import PolicyError

__all__ = [  # what callers import from here, wherever it now lives
    "LoadResult",
    "PolicyLoadError",
    "bundle_version",
    "canonical_content",
    "load_bundle",
    "load_dir",
    "pydantic_message",
    "rule_locations",
]


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
    merged, source, errors, unread = merge_files(files)
    errors.extend(stray)
    bundle, leftovers, item_errors = validate_items(merged, source)
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


def _ordered(errors: list[PolicyError]) -> list[PolicyError]:
    return sorted(errors, key=lambda e: (e.file, e.line or 0, e.path, e.message))

