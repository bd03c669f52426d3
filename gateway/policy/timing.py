"""Where a rule's ``effective`` window stands at an instant (for people, not decisions)."""

from __future__ import annotations

from datetime import datetime
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
