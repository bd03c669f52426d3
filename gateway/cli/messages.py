"""Tagged messages on stderr for CLI commands: ``error: …``, ``note: …``.

The tag is styled; the message is printed verbatim as a rich ``Text``, never
parsed as markup, because it carries user input (paths, URLs, exception texts,
rule and node ids) in which a ``[...]`` must stay as typed.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.text import Text

PIPED_WIDTH = 250
"""Columns for output that goes to a file or a pipe (no terminal, no COLUMNS)."""


def piped_width() -> int | None:
    """``PIPED_WIDTH`` when stdout is no terminal and COLUMNS is unset, else None (rich's own).

    Rich assumes 80 columns off a terminal, and its tables then cut cells
    short with an ellipsis: a report saved for sign-off listed customers as
    "cus-cn-…". Tables are only as wide as their content, so this costs
    nothing to output that fits.
    """
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return None
    return PIPED_WIDTH


def stderr() -> Console:
    return Console(stderr=True, emoji=False)


def say(console: Console, tag: str, style: str, message: str) -> None:
    console.print(Text.assemble((tag, style), " ", message), highlight=False)


def error(console: Console, message: str) -> None:
    say(console, "error:", "red", message)


def note(console: Console, message: str) -> None:
    say(console, "note:", "yellow", message)
