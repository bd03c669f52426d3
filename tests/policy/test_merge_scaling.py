"""Loading a bundle grows linearly with the number of named items.

Merging looked up each item's line entries by scanning every line of its
file, once per item: quadratic, so a 5,000-model ``models.yaml`` took 16 s to
load (a policy validate or reload holding a worker thread, and before that
the event loop, for as long). Compared as a ratio of two sizes measured on
the same machine, never against a wall-clock bound."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from gateway.policy.loader import load_dir

REPO = Path(__file__).resolve().parents[2]


def _bundle(directory: Path, models: int) -> Path:
    directory.mkdir()
    for path in (REPO / "policies").glob("*.yaml"):
        shutil.copy(path, directory / path.name)
    with (directory / "models.yaml").open("a") as fh:
        fh.writelines(f"  bulk-model-{i}:\n    tiers: [enterprise, research, government, defense]\n"
                      for i in range(models))  # fmt: skip
    return directory


def _load_seconds(directory: Path) -> float:
    best = float("inf")
    for _ in range(2):  # the better of two: a neighbour's burst inflates one run
        started = time.perf_counter()
        result = load_dir(directory)
        best = min(best, time.perf_counter() - started)
        assert result.ok, result.errors[:3]
    return best


def test_four_times_the_models_take_about_four_times_as_long(tmp_path: Path) -> None:
    small = _load_seconds(_bundle(tmp_path / "small", 1000))
    large = _load_seconds(_bundle(tmp_path / "large", 4000))
    # Linear: about 4x. Quadratic (before): about 12x here.
    assert large / small < 8, (small, large)
