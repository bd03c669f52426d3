"""Tagged messages on stderr for CLI commands: ``error: …``, ``note: …``.

The tag is styled; the message is printed verbatim as a rich ``Text``, never
parsed as markup, because it carries user input (paths, URLs, exception texts,
rule and node ids) in which a ``[...]`` must stay as typed.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text


def stderr() -> Console:
    return Console(stderr=True, emoji=False)


def say(console: Console, tag: str, style: str, message: str) -> None:
    console.print(Text.assemble((tag, style), " ", message), highlight=False)


def error(console: Console, message: str) -> None:
    say(console, "error:", "red", message)


def note(console: Console, message: str) -> None:
    say(console, "note:", "yellow", message)
