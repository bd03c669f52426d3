"""Names written with look-alike letters: the Latin spelling a reader sees.

Cyrillic and Greek have letters drawn exactly like Latin ones (Cyrillic
``Р``/``р`` is Latin ``P``/``p``, ``С``/``с`` is ``C``/``c``, ``Н`` is ``H``,
``у`` is ``y``, ``х`` is ``x``, ``ѕ`` is ``s``...). ``name_match`` reads
Cyrillic by its sound (``р`` is ``r``, ``с`` is ``s``, ``Н`` is ``n``), as a
name written in Cyrillic must be; so "Velmora Precision Components" typed
with those look-alikes, identical on a reviewer's screen, was compared as
"velmora rresisiion somronents" and screened ``clear`` (0.86 against the
listed party). ``visual_spelling`` gives the second reading, letter by
shape; the screener scores both and keeps the higher.

Only a word that can be read wholly as Latin is folded: every letter in it
Latin or a look-alike, at least one a look-alike. A word with a letter of its
own script (``Иван``, ``Петров``: ``И``, ``П``) is a genuine Cyrillic word and
keeps its one, phonetic, reading. The table holds the unambiguous pairs of
Unicode's confusables data (UTS #39) for Cyrillic, Greek and Armenian, and
the digits ``0`` and ``1`` (``O``, ``l``) in words that have letters
("Ve1m0ra Prec1s10n C0mp0nents" screened clear at 0.87).
"""

# ruff: noqa: RUF001, RUF002  (the table and its examples are non-ASCII on purpose)
from __future__ import annotations

import re
import unicodedata

_LOOKALIKES = {
    # Cyrillic capitals and small letters drawn as Latin ones.
    "А": "A", "В": "B", "Е": "E", "Ѕ": "S", "І": "I", "Ј": "J", "К": "K", "М": "M",
    "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ү": "Y",
    "Һ": "H", "Ԛ": "Q", "Ԝ": "W", "Ӏ": "I", "Ѵ": "V",
    "а": "a", "е": "e", "ѕ": "s", "і": "i", "ј": "j", "о": "o", "р": "p", "с": "c",
    "у": "y", "х": "x", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ү": "y", "ӏ": "l",
    "ѵ": "v", "г": "r", "п": "n",
    # Greek.
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    "α": "a", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "υ": "u", "χ": "x",
    "γ": "y", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Armenian.
    "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ց": "g",
    # Digits inside a word of letters ("Ve1m0ra"): only there, see _fold.
    "0": "o", "1": "l",
}  # fmt: skip
_TABLE = str.maketrans(_LOOKALIKES)
_WORD = re.compile(r"\w+")


def _reads_as_latin(ch: str) -> bool:
    return ch in _LOOKALIKES or not ch.isalpha() or unicodedata.name(ch, "").startswith("LATIN")


def _fold(match: re.Match[str]) -> str:
    word = match.group(0)
    if (
        any(ch in _LOOKALIKES for ch in word)
        and all(_reads_as_latin(ch) for ch in word)
        and any(ch.isalpha() for ch in word)  # a number ("2010") is no word to read
    ):
        return word.translate(_TABLE)
    return word


def visual_spelling(name: str) -> str | None:
    """``name`` with its look-alike letters read as Latin, or None when that
    changes nothing (no word of it mixes look-alikes with Latin only)."""
    folded = _WORD.sub(_fold, name)
    return folded if folded != name else None


def spellings(name: str) -> tuple[str, ...]:
    """The readings of ``name`` to screen: as written, and by shape when that differs."""
    visual = visual_spelling(name)
    return (name,) if visual is None else (name, visual)
