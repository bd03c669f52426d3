"""What ``gateway policy test`` reports, as data: ``POST /admin/v1/policy/test``
answers it as JSON, with the CLI's coverage (``coverage.py``) and counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.policy.compiled import CompiledBundle, compile_bundle
from gateway.policy.coverage import unmatched_rules
from gateway.policy.loader import LoadResult, rule_locations
from gateway.policy.testing import CaseResult, run_tests


def uncovered(
    directory: Path, bundle: CompiledBundle, results: list[CaseResult]
) -> list[dict[str, Any]]:
    """The rules no case saw match, each with its ``file:line`` (None if unplaced)."""
    where = {loc[0]: f"{loc[1]}:{loc[2]}" for loc in rule_locations(directory) if loc is not None}
    return [{"id": rule_id, "location": where.get(rule_id)}
            for rule_id in unmatched_rules(bundle, results)]  # fmt: skip


def case_document(directory: Path, result: LoadResult) -> dict[str, Any]:
    """Every case's outcome, the counts and the coverage, as ``policy test`` reports them.

    ``ok`` is what the CLI's exit status says: the bundle loads and no case fails."""
    warnings = [str(w) for w in result.warnings]
    if not result.ok or result.bundle is None or result.version is None:
        return {"ok": False, "version": None, "errors": [str(e) for e in result.errors],
                "warnings": warnings, "passed": 0, "failed": 0, "results": [],
                "uncovered_rules": []}  # fmt: skip
    bundle = compile_bundle(result.bundle, result.version)
    results = run_tests(directory, bundle)
    failed = sum(not r.passed for r in results)
    return {
        "ok": failed == 0,
        "version": result.version,
        "errors": [],
        "warnings": warnings,
        "passed": len(results) - failed,
        "failed": failed,
        "results": [
            {"file": r.file, "line": r.line, "name": r.name, "passed": r.passed,
             "detail": r.detail, "matched": sorted(r.matched)}
            for r in results
        ],
        # As the CLI: coverage is said only when there are cases to measure it by.
        "uncovered_rules": uncovered(directory, bundle, results) if results else [],
    }
