"""The comparison form of a name, and the similarity of two names.

Both sides of a screening are normalised the same way: transliterate
Cyrillic/Greek, fold accents and other combining marks (NFKD, marks dropped,
NFKC), lower-case, punctuation to spaces, legal-form suffixes removed (LLC,
Ltd, GmbH...), tokens sorted so that word order does not matter. Letters of
scripts with no ASCII folding (Han, Hangul, Arabic...) are kept as they are,
so a name in such a script is compared with list entries (aliases) in that
script; they used to be dropped, which screened such a name as nothing, i.e.
``clear``. The score is the max of ``fuzz.token_sort_ratio / 100`` and
Jaro-Winkler on the sorted tokens, a token-to-token pairing, and the
edit-distance ratio of the tokens joined in reading order (``compact``: name
particles written joined or apart).
"""

# ruff: noqa: RUF001  (the transliteration table is non-ASCII on purpose)
from __future__ import annotations

import re
import unicodedata
from itertools import permutations

from gateway.kyc.confusables import spellings

# rapidfuzz (~2.6 MB resident) is imported where a name is scored, not here:
# every serving process imports this module, few ever screen a name.

# Letters NFKD does not decompose, and Cyrillic/Greek, which it would drop.
_TRANSLIT = {
    "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th",
    "ı": "i", "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e",
    "ж": "zh", "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n",
    "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh",
    "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e",
    "ю": "yu", "я": "ya", "і": "i", "ї": "yi", "є": "ye", "ґ": "g",
    "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th",
    "ι": "i", "κ": "k", "λ": "l", "μ": "m", "ν": "n", "ξ": "x", "ο": "o", "π": "p",
    "ρ": "r", "σ": "s", "ς": "s", "τ": "t", "υ": "y", "φ": "f", "χ": "ch", "ψ": "ps",
    "ω": "o",
}  # fmt: skip
_TRANSLIT_TABLE = str.maketrans(_TRANSLIT)

LEGAL_SUFFIXES = frozenset(
    {
        "llc",
        "ltd",
        "limited",
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "gmbh",
        "ag",
        "kg",
        "sa",
        "sas",
        "sarl",
        "srl",
        "spa",
        "plc",
        "lp",
        "llp",
        "bv",
        "nv",
        "oy",
        "ab",
        "as",
        "asa",
        "pte",
        "pty",
        "jsc",
        "ojsc",
        "pjsc",
        "ooo",
        "oao",
        "zao",
        "tov",
        "sro",
        "kft",
        "zrt",
        "ao",
        "pao",
        "sp",
        "zoo",
        "fze",
        "fzco",
        "fzc",
    }
)
# Unicode-aware: letters and digits of every script are name characters.
_NON_ALNUM = re.compile(r"[\W_]+")
_ABBREVIATION = re.compile(r"\b([a-z])\.(?=[a-z]\.)")


def normalize(name: str) -> str:
    """The comparison form of a name: ASCII, lower case, no legal suffix, sorted tokens."""
    return " ".join(sorted(_tokens(name)))


def compact(name: str) -> str:
    """The name's tokens in reading order with nothing between them.

    Name particles are written joined or apart ("Abd al-Rahman", "Abdel
    Rahman", "Abdulrahman"): token scores cannot pair one token with two, a
    comparison of the whole letter sequence can. Lists write individuals
    "LAST, First Middle": the part before the first comma goes last, so both
    forms read in the same order.
    """
    head, comma, tail = name.partition(",")
    return "".join(_tokens(f"{tail} {head}" if comma else name))


def _tokens(name: str) -> list[str]:
    text = name.lower().translate(_TRANSLIT_TABLE)
    # Accents and vowel marks are combining characters after NFKD: drop them
    # and recompose (NFKC), which folds Latin to ASCII as before and keeps
    # every other script's letters (Hangul syllables come back whole).
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = unicodedata.normalize("NFKC", text).lower()
    # Joined abbreviations ("L.L.C.", "S.A.") become one token before suffix removal.
    text = _ABBREVIATION.sub(r"\1", text).replace(".", "")
    tokens = [t for t in _NON_ALNUM.split(text) if t]
    return [t for t in tokens if t not in LEGAL_SUFFIXES] or tokens


def similarity(a: str, b: str) -> float:
    """Score two names in [0, 1] (both normalised here), the best over each
    name's readings: as written, and by shape when it has look-alike letters
    (``confusables.spellings``)."""
    return max(
        max(_score(normalize(x), normalize(y)), _compact_score(compact(x), compact(y)))
        for x in spellings(a)
        for y in spellings(b)
    )


def _compact_score(ca: str, cb: str) -> float:
    from rapidfuzz import fuzz

    # Edit distance only: Jaro-Winkler's prefix bonus would make a name that
    # begins another one ("Mohammed Ali" / "Mohammed Ali Hassan") a match.
    return fuzz.ratio(ca, cb) / 100.0 if ca and cb else 0.0


def _score(na: str, nb: str) -> float:
    if not na or not nb:
        return 0.0
    return max(_sorted_score(na, nb), aligned_score(na.split(), nb.split()))


def _sorted_score(na: str, nb: str) -> float:
    from rapidfuzz import fuzz
    from rapidfuzz.distance import JaroWinkler

    # On sorted tokens, fuzz.ratio is token_sort_ratio.
    return max(fuzz.ratio(na, nb) / 100.0, JaroWinkler.normalized_similarity(na, nb))


MAX_ALIGN_TOKENS = 6


def aligned_score(ta: list[str], tb: list[str]) -> float:
    """Best token-to-token pairing, Jaro-Winkler per token, weighted by length.

    Sorting tokens fails when a transliteration changes a first letter
    ("Philippa Iskanderov" / "Filippa Iskanderoff" sort differently); pairing
    tokens does not. Unpaired tokens count as zero, so extra names lower the score.
    """
    if not ta or not tb or max(len(ta), len(tb)) > MAX_ALIGN_TOKENS:
        return 0.0
    from rapidfuzz.distance import JaroWinkler

    short, long_ = (ta, tb) if len(ta) <= len(tb) else (tb, ta)
    total = sum(len(t) for t in ta) + sum(len(t) for t in tb)
    best = 0.0
    for chosen in permutations(long_, len(short)):
        weight = sum(
            JaroWinkler.normalized_similarity(x, y) * (len(x) + len(y))
            for x, y in zip(short, chosen, strict=True)
        )
        best = max(best, weight / total)
    return best
