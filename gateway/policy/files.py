"""Which files of a policy directory are the bundle, which its tests, which neither.

- Bundle files: ``*.yaml`` / ``*.yml`` directly in the directory, the
  extension in any case (``extra.YAML``, ``x.Yml``): a file an officer named
  with a capital extension is still meant to be policy.
- Policy tests: ``*.yaml`` / ``*.yml`` (any case) anywhere under ``tests/``.
- Hidden names (``.git``, ``.github``, ``.rules.yaml.swp``) are not part of
  the bundle: the directory is often a git checkout.
- Any other YAML file under the directory (``sanctions/extra.yaml``) is
  *stray*. It was silently ignored, so a deny rule dropped one level too deep
  never applied while ``validate`` said the bundle was fine. The loader now
  refuses the bundle naming each stray file: nobody reviewing the directory
  can tell whether such a file is in force, so it must be moved up (merged)
  or out of the directory.
"""

from __future__ import annotations

import os
from pathlib import Path

YAML_SUFFIXES = (".yaml", ".yml")
TESTS_DIR = "tests"
STRAY_MESSAGE = (
    "not read: bundle files must be directly in the policy directory "
    f"(only {TESTS_DIR}/ may hold YAML, the policy tests); "
    "move it up to merge it, or out of the directory"
)


def is_yaml(path: Path) -> bool:
    return path.suffix.lower() in YAML_SUFFIXES


def _hidden(name: str) -> bool:
    return name.startswith(".")


def bundle_files(directory: Path) -> list[Path]:
    """The bundle's own files, sorted by name (rules concatenate in this order)."""
    return sorted(
        p for p in directory.iterdir() if p.is_file() and is_yaml(p) and not _hidden(p.name)
    )


def _walk(root: Path) -> list[Path]:
    """YAML files under ``root`` at any depth, hidden names skipped, symlinked dirs not followed."""
    found: list[Path] = []
    for current, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        base = Path(current)
        found.extend(base / n for n in sorted(names) if not _hidden(n) and is_yaml(Path(n)))
    return found


def test_files(directory: Path) -> list[Path]:
    """Policy test files: every YAML file under ``tests/``, in path order."""
    tests = directory / TESTS_DIR
    if not tests.is_dir():
        return []
    return sorted(p for p in _walk(tests) if p.is_file())


def stray_files(directory: Path) -> list[str]:
    """YAML files in sub-directories other than ``tests/``, as paths relative to ``directory``."""
    stray: list[str] = []
    for sub in sorted(directory.iterdir()):
        if sub.is_dir() and not _hidden(sub.name) and sub.name != TESTS_DIR:
            stray.extend(p.relative_to(directory).as_posix() for p in _walk(sub))
    return stray


test_files.__test__ = False  # type: ignore[attr-defined]
