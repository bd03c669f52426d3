"""Sanctions / denied-party screening of customer names.

Loads a list once (US Consolidated Screening List CSV export, or OpenSanctions
FollowTheMoney JSON lines) and screens names with rapidfuzz. Both sides are
normalised the same way: transliterate Cyrillic/Greek, fold accents and
other combining marks (NFKD, marks dropped, NFKC), lower-case, punctuation to
spaces, legal-form suffixes removed (LLC, Ltd, GmbH...), tokens sorted so that
word order does not matter. Letters of scripts with no ASCII folding (Han,
Hangul, Arabic...) are kept as they are, so a name in such a script is compared
with list entries (aliases) in that script; they used to be dropped, which
screened such a name as nothing, i.e. ``clear``. A name of which nothing is
left to compare is a ``potential_match`` for a human to look at, never a
``clear`` nobody could have computed. The score is the max of
``fuzz.token_sort_ratio / 100`` and Jaro-Winkler on the sorted tokens, a
token-to-token pairing, and the edit-distance ratio of the tokens joined in
reading order (``compact``: name particles written joined or apart); at or
above the threshold (``settings.sanctions_threshold``) the name is a
*potential* match held for human review: a match is a lead, and "no match" is
not a safe harbour.

The list version recorded with each result is ``<sha256 prefix>-<YYYYMMDD>``
of the file, so a reviewer can tell which list a result came from.
"""

# ruff: noqa: RUF001  (the transliteration table is non-ASCII on purpose)
from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import permutations
from pathlib import Path
from typing import Literal

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

Status = Literal["clear", "potential_match"]


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
    """Score two names in [0, 1] (both normalised here)."""
    return max(_score(normalize(a), normalize(b)), _compact_score(compact(a), compact(b)))


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


@dataclass(frozen=True, slots=True)
class ListedParty:
    name: str
    """The listed name (primary or alias) this entry matches on."""
    primary_name: str
    source: str
    entity_type: str


@dataclass(frozen=True, slots=True)
class ScreeningResult:
    status: Status
    list_version: str
    best_match: str | None
    score: float
    source: str | None = None


@dataclass(frozen=True, slots=True)
class SanctionsList:
    entries: tuple[ListedParty, ...]
    version: str


def list_version(path: Path, when: datetime | None = None) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    day = (when or datetime.fromtimestamp(path.stat().st_mtime, UTC)).strftime("%Y%m%d")
    return f"{digest}-{day}"


def load_csl_csv(path: Path) -> SanctionsList:
    """US Consolidated Screening List CSV: ``name``, ``alt_names`` (``;``), ``type``, ``source``."""
    entries: list[ListedParty] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "name" not in reader.fieldnames:
            raise ValueError(f"{path}: not a screening-list CSV (no 'name' column)")
        for row in reader:
            primary = (row.get("name") or "").strip()
            if not primary:
                continue
            aliases = [a.strip() for a in (row.get("alt_names") or "").split(";")]
            source = (row.get("source") or "").strip()
            kind = (row.get("type") or "").strip()
            for name in [primary, *filter(None, aliases)]:
                entries.append(ListedParty(name, primary, source, kind))
    return SanctionsList(tuple(entries), list_version(path))


def load_ftm_jsonl(path: Path) -> SanctionsList:
    """OpenSanctions FollowTheMoney entities, one JSON object per line."""
    entries: list[ListedParty] = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entity = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
            if not isinstance(entity, dict):
                raise ValueError(f"{path}:{lineno}: not a FollowTheMoney entity (a JSON object)")
            props = entity.get("properties") or {}
            names = [n for n in props.get("name", []) if isinstance(n, str) and n.strip()]
            if not names:
                continue
            aliases = [a for a in props.get("alias", []) if isinstance(a, str) and a.strip()]
            source = ",".join(entity.get("datasets") or []) or "opensanctions"
            for name in [*names, *aliases]:
                entries.append(ListedParty(name, names[0], source, str(entity.get("schema", ""))))
    return SanctionsList(tuple(entries), list_version(path))


def load_list(path: Path) -> SanctionsList:
    """Pick the loader by extension: ``.csv``, else FollowTheMoney JSON lines."""
    if path.suffix.lower() == ".csv":
        return load_csl_csv(path)
    return load_ftm_jsonl(path)


class Screener:
    """Screens names against one loaded list.

    The sorted-token scores run in C over every pre-normalised entry. The
    token-pairing score is Python, so it only runs on candidates: entries
    sharing a token that is similar (Jaro-Winkler >= ``TOKEN_PREFILTER``) to
    one of the query's tokens, found through an inverted token index.
    """

    TOKEN_PREFILTER = 0.8
    MAX_CANDIDATES = 2000

    def __init__(self, sanctions: SanctionsList, threshold: float = 0.9) -> None:
        self.sanctions = sanctions
        self.threshold = threshold
        self._normalized = [normalize(e.name) for e in sanctions.entries]
        self._compact = [compact(e.name) for e in sanctions.entries]
        index: dict[str, set[int]] = {}
        for i, text in enumerate(self._normalized):
            for token in text.split():
                index.setdefault(token, set()).add(i)
        self._index = index
        self._vocabulary = list(index)

    def _candidates(self, tokens: list[str]) -> set[int]:
        from rapidfuzz import process
        from rapidfuzz.distance import JaroWinkler

        found: set[int] = set()
        for token in tokens:
            similar = process.extract(
                token,
                self._vocabulary,
                scorer=JaroWinkler.normalized_similarity,
                processor=None,
                score_cutoff=self.TOKEN_PREFILTER,
                limit=50,
            )
            for match, _score_value, _pos in similar:
                found |= self._index[match]
                if len(found) >= self.MAX_CANDIDATES:
                    return found
        return found

    @property
    def version(self) -> str:
        return self.sanctions.version

    def screen(self, name: str) -> ScreeningResult:
        query = normalize(name)
        best_index: int | None = None
        best = 0.0
        if query and self._normalized:
            from rapidfuzz import fuzz, process
            from rapidfuzz.distance import JaroWinkler

            for scorer, scale in ((fuzz.ratio, 100.0), (JaroWinkler.normalized_similarity, 1.0)):
                found = process.extractOne(query, self._normalized, scorer=scorer, processor=None)
                if found is not None and found[1] / scale > best:
                    best, best_index = found[1] / scale, found[2]
            joined = process.extractOne(
                compact(name), self._compact, scorer=fuzz.ratio, processor=None
            )
            if joined is not None and joined[1] / 100.0 > best:
                best, best_index = joined[1] / 100.0, joined[2]
            tokens = query.split()
            for i in sorted(self._candidates(tokens)):
                aligned = aligned_score(tokens, self._normalized[i].split())
                if aligned > best:
                    best, best_index = aligned, i
        if not query:
            # Nothing of the name is left to compare: no score can say it is
            # not a listed party, so a person decides (fail closed).
            return ScreeningResult("potential_match", self.version, None, 0.0)
        if best_index is None:
            return ScreeningResult("clear", self.version, None, 0.0)
        entry = self.sanctions.entries[best_index]
        status: Status = "potential_match" if best >= self.threshold else "clear"
        return ScreeningResult(status, self.version, entry.name, round(best, 4), entry.source)

    def matches(self, name: str) -> list[ScreeningResult]:
        """Every listed name ``name`` matches at or above the threshold,
        strongest first; the best result alone (``screen``) when none does.

        A review clears a hit on one listed name: a second listed name the same
        name matches (a list update adds it) must be a hit of its own, not
        hidden behind the stronger one the review cleared. Only a hit pays
        for the full scan; most names are not one.
        """
        best = self.screen(name)
        if best.status != "potential_match" or best.best_match is None:
            return [best]
        from rapidfuzz import fuzz, process
        from rapidfuzz.distance import JaroWinkler

        scores: dict[int, float] = {}

        def keep(index: int, score: float) -> None:
            if score >= self.threshold and score > scores.get(index, 0.0):
                scores[index] = score

        query = normalize(name)
        scans = (
            (query, self._normalized, fuzz.ratio, 100.0),
            (query, self._normalized, JaroWinkler.normalized_similarity, 1.0),
            (compact(name), self._compact, fuzz.ratio, 100.0),
        )
        for text, choices, scorer, scale in scans:
            # The cutoff a hair low: 0.9 * 100 is 90.00000000000001 in floats.
            cutoff = self.threshold * scale * (1 - 1e-9)
            for _match, value, index in process.extract(
                text, choices, scorer=scorer, processor=None, score_cutoff=cutoff, limit=None
            ):
                keep(index, value / scale)
        tokens = query.split()
        for index in self._candidates(tokens):
            keep(index, aligned_score(tokens, self._normalized[index].split()))
        # One hit per listed name (an alias may be listed under two entries).
        by_name: dict[str, ScreeningResult] = {best.best_match: best}
        for index, score in scores.items():
            entry = self.sanctions.entries[index]
            found = by_name.get(entry.name)
            if found is None or round(score, 4) > found.score:
                by_name[entry.name] = ScreeningResult(
                    "potential_match", self.version, entry.name, round(score, 4), entry.source
                )
        return sorted(by_name.values(), key=lambda r: (-r.score, r.best_match or ""))


def screener_from_path(path: Path, threshold: float) -> Screener:
    return Screener(load_list(path), threshold)


def screen_many(screener: Screener, names: Iterable[str]) -> list[ScreeningResult]:
    return [screener.screen(n) for n in names]


class SanctionsListError(Exception):
    """``GATEWAY_SANCTIONS_LIST`` is set but cannot be used; the message names it."""


SANCTIONS_LIST_VARIABLE = "GATEWAY_SANCTIONS_LIST"


def load_screener(path: Path | None, threshold: float) -> Screener | None:
    """The screener for ``settings.sanctions_list`` (None when no list is configured).

    The app puts it at ``services.extras["screener"]``; a list that fails to load
    is a start-up error, never a silent "clear": ``SanctionsListError`` naming
    the variable. A list without a single entry is refused too, since it would
    clear every name it is asked about.
    """
    if path is None:
        return None
    try:
        screener = screener_from_path(path, threshold)
    # OSError: missing, unreadable, a directory; ValueError (UnicodeDecodeError
    # included): not a list in either format; csv.Error: malformed CSV.
    except (OSError, ValueError, csv.Error) as exc:
        raise SanctionsListError(f"{SANCTIONS_LIST_VARIABLE}: cannot load {path}: {exc}") from exc
    if not screener.sanctions.entries:
        raise SanctionsListError(
            f"{SANCTIONS_LIST_VARIABLE}: {path} lists no parties (no row with a name)"
        )
    return screener
