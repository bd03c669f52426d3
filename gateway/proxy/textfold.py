"""Fold prompt text to what a model reads, before the classifiers see it.

A model reads ``ex<U+200B>ploit`` (a zero-width space inside), ``exploit``
in fullwidth letters (U+FF45...) and Unicode tag characters (U+E0020-U+E007E,
invisible copies of ASCII that tokenizers keep: "ASCII smuggling") as the
plain word, but a ``\\bexploit\\b`` rule does not. So the classification text is folded:

1. tag characters become the ASCII they copy;
2. default-ignorable code points (Unicode's ``Default_Ignorable_Code_Point``:
   zero-width spaces and joiners, soft hyphens, bidi controls, word joiners,
   variation selectors...) are removed;
3. NFKC maps compatibility forms (fullwidth, ligatures, superscripts,
   non-breaking and typographic spaces) to their plain letters;
4. dash punctuation becomes ``-`` (``CVE-2024-1234`` written with U+2010).

The forwarded body is the client's text. The audit record's
``prompt_sha256`` is taken over the folded text, so copies of one prompt
perturbed with invisible or fullwidth characters share one hash (account-farm
links); ordinary text folds to itself and hashes as it always did.

Cost: ASCII text, by far the commonest, is returned as it is (``isascii`` is
O(1)); other text is scanned once by a compiled character class (~3 ns a
character, ~8 with characters beyond the BMP) and returned as it is when it
holds none of the characters above (CJK text with its fullwidth punctuation
included: only fullwidth *letters and digits* are looked for). Removal,
dashes and tags are C-speed substitutions; NFKC (~30 ns a character) runs
only on text that holds a compatibility letter, digit or space, i.e. text
written to dodge the rules.

Not folded (limits of pattern rules, see docs/policy.md): look-alike letters
from other scripts (a Cyrillic U+0435 for the ``e`` of ``exploit``), spelling games
(``3xpl0it``, ``ex ploit``), other languages, and encodings (base64, ROT13).
"""

from __future__ import annotations

import re
import unicodedata

# Unicode 15.1 DerivedCoreProperties.txt, Default_Ignorable_Code_Point; the
# tag block (E0000-E007F) is translated first, so its printable part survives.
_IGNORABLE_BMP = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
_IGNORABLE_ASTRAL = "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
_TAGS = "\U000e0020-\U000e007e"
_DASHES = "\u2010-\u2015\u2212\ufe58\ufe63\uff0d"
# Compatibility forms of Latin letters, digits, '#', '`' and spaces, which NFKC
# maps to ASCII: fullwidth, mathematical alphanumerics, enclosed and
# letterlike symbols, ligatures, super- and subscripts, non-breaking and
# typographic spaces. Fullwidth punctuation (U+FF0C, U+FF08...) is left out:
# it is ordinary in CJK text and hides no keyword.
_COMPAT_BMP = (
    "\u00a0\u1680\u2000-\u200a\u202f\u205f\u1d2c-\u1d6a\u2070-\u209f"
    "\u2100-\u214f\u2460-\u24ff\ufb00-\ufb06\uff03\uff10-\uff19\uff21-\uff3a"
    "\uff40-\uff5a"
)
_COMPAT_ASTRAL = "\U0001d400-\U0001d7ff\U0001f130-\U0001f189"
_IGNORABLE = _IGNORABLE_BMP + _IGNORABLE_ASTRAL
_COMPAT = _COMPAT_BMP + _COMPAT_ASTRAL

# A class of BMP characters only compiles to a lookup table (~3 ns a
# character); one with astral ranges is matched range by range (~8 ns). Most
# text has no astral character, so it is scanned with the first.
_ANY_BMP = re.compile(f"[{_IGNORABLE_BMP}{_DASHES}{_COMPAT_BMP}]")
_ANY = re.compile(f"[{_IGNORABLE}{_DASHES}{_COMPAT}]")
_TAG = re.compile(f"[{_TAGS}]")
_DROP = re.compile(f"[{_IGNORABLE}]+")
_DASH = re.compile(f"[{_DASHES}]")
_NFKC = re.compile(f"[{_COMPAT}]")
_TAG_ASCII = {cp: chr(cp - 0xE0000) for cp in range(0xE0020, 0xE007F)}


def _suspect(text: str) -> bool:
    # UTF-16 needs two units per astral character: equal lengths mean none
    # (the encoding is a copy for BMP text, ~0.3-0.8 ns a character).
    astral = len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text)
    return (_ANY if astral else _ANY_BMP).search(text) is not None


def fold(text: str) -> str:
    """The text as the classifiers should read it (see the module docstring)."""
    if text.isascii() or not _suspect(text):
        return text
    if _TAG.search(text) is not None:
        text = text.translate(_TAG_ASCII)
    text = _DROP.sub("", text)
    text = _DASH.sub("-", text)
    if _NFKC.search(text) is not None:
        text = unicodedata.normalize("NFKC", text)
    return text
