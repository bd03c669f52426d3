"""Where a rule's ``effective`` window stands at an instant (for people, not decisions)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

WindowState = Literal["pending", "in_force", "ended"]


def window_state(start: datetime | None, end: datetime | None, now: datetime) -> WindowState:
    """``pending`` before ``from``, ``ended`` from ``until`` on, else ``in_force``
    (the engine's ``from <= now < until``)."""
    if start is not None and now < start:
        return "pending"
    if end is not None and now >= end:
        return "ended"
    return "in_force"


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
LONGEST = timedelta(days=1000 * 365)
"""Longer windows read as this one: both mean the whole log. Past it, ``now -
window`` falls before year 1 (or ``timedelta`` refuses the number) and
raised ``OverflowError``: a 500 at the admin API, a traceback at the CLI."""


def parse_duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w``: how far back a report looks (CLI and admin API)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"'{text}': use a number and s, m, h, d or w, e.g. 7d")
    seconds = int(match[1]) * _SECONDS[match[2]]
    return timedelta(seconds=min(seconds, int(LONGEST.total_seconds())))
