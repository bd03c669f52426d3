"""The benchmark report's target rows (the harness prints them; nothing here
asserts a speed): which rows appear, and how each is judged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import parse_args
from bench.report import check_targets


def _point(rps: float, p50: float, p99: float) -> dict[str, Any]:
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": {"non2xx": 0, "socket": 0}}


def _results(with_litellm: bool) -> dict[str, Any]:
    load: dict[str, dict[str, Any]] = {
        "1": {"direct": _point(40000, 0.02, 0.05), "bare": _point(2500, 0.35, 0.7),
              "gateway": _point(600, 1.0, 1.9)},
        "8": {"direct": _point(45000, 0.15, 0.3), "bare": _point(4000, 2.0, 3.0),
              "gateway": _point(2500, 3.0, 5.0)},
    }
    targets = ["direct", "bare", "gateway"]
    if with_litellm:
        load["1"]["litellm"] = _point(70, 15.02, 20.0)
        load["8"]["litellm"] = _point(80, 100.0, 130.0)
        targets.append("litellm")
    return {"config": {"targets": targets}, "load": load, "streams": {},
            "memory": {"gateway": {"rss_mb": 110.0}}}


def _rows(results: dict[str, Any]) -> dict[str, tuple[str, bool | None]]:
    return {goal: (measured, met) for goal, measured, _, met in check_targets(results)}


def test_rows_judge_the_gateway_against_bare_and_direct() -> None:
    rows = _rows(_results(with_litellm=False))
    assert rows["gateway: req/s at 8 conns vs bare"] == ("62 %", True)
    assert rows["gateway: added p50 at 1 conn"] == ("0.98 ms", False)
    assert rows["gateway: added p99 at 8 conns"] == ("4.70 ms", True)
    assert rows["gateway: RSS after streams"] == ("110 MB", True)
    assert not any("LiteLLM" in goal for goal in rows)


def test_litellm_column_adds_the_30x_yardstick() -> None:
    rows = _rows(_results(with_litellm=True))
    assert rows["gateway: req/s at 8 conns vs LiteLLM"] == ("31.2x", True)
    # Added p50 at one connection: LiteLLM 15.00 ms, gateway 0.98 ms; reference only.
    assert rows["gateway: added p50 at 1 conn vs LiteLLM's"] == ("15.3x lower", None)


def test_litellm_is_a_default_target_only_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_LITELLM", str(tmp_path / "missing"))
    assert "litellm" not in parse_args([]).targets
    fake = tmp_path / "litellm"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setenv("BENCH_LITELLM", str(fake))
    assert parse_args([]).targets == ["direct", "bare", "gateway", "litellm"]
