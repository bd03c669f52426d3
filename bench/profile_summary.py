"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the time goes.

    python -m bench.profile_summary bench/results/gateway-profile.txt [--top 30] [--grep gateway/]

Prints the share of samples per function, inclusive (anywhere on the stack)
and self (top of the stack), optionally only for frames whose file matches
``--grep``; frames are aggregated by function and file, not by line.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _key(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarise(path: Path, top: int, grep: str | None) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_key(f) for f in stack.split(";") if f]
        for name in set(frames):
            inclusive[name] += count
        if frames:
            own[frames[-1]] += count
    if not total:
        return "no samples"

    def table(counter: Counter[str], title: str) -> list[str]:
        rows = [f"{title} (of {total} samples)"]
        shown = 0
        for name, count in counter.most_common():
            if grep and grep not in name:
                continue
            rows.append(f"  {100 * count / total:5.1f} %  {name}")
            shown += 1
            if shown >= top:
                break
        return rows

    return "\n".join([*table(inclusive, "inclusive"), "", *table(own, "self")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--grep", default=None, help="only frames whose name contains this")
    args = parser.parse_args()
    print(summarise(args.profile, args.top, args.grep))


if __name__ == "__main__":
    main()
