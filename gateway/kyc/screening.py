"""Sanctions / denied-party screening of customer names.

Loads a list once (US Consolidated Screening List CSV export, or OpenSanctions
FollowTheMoney JSON lines: ``sanctions_lists.py``) and screens names with
rapidfuzz, both sides normalised and scored as ``name_match.py`` says. A name
with look-alike letters (Cyrillic Er drawn as Latin ``P``) is screened as written
and as it looks (``confusables.py``), the stronger result kept. A name
of which nothing is left to compare is a ``potential_match`` for a human to
look at, never a ``clear`` nobody could have computed. At or above the
threshold (``settings.sanctions_threshold``) the name is a *potential* match
held for human review: a match is a lead, and "no match" is not a safe harbour.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.kyc.confusables import spellings
from gateway.kyc.name_match import aligned_score, compact, normalize, similarity
from gateway.kyc.sanctions_lists import SanctionsList, load_csl_csv, load_ftm_jsonl, load_list

__all__ = [  # what callers and tests import from here, wherever it now lives
    "SanctionsListError",
    "Screener",
    "ScreeningResult",
    "load_csl_csv",
    "load_ftm_jsonl",
    "load_list",
    "load_screener",
    "normalize",
    "screen_many",
    "screener_from_path",
    "similarity",
]

# rapidfuzz is imported where a name is scored, not here (as in name_match.py).

Status = Literal["clear", "potential_match"]


@dataclass(frozen=True, slots=True)
class ScreeningResult:
    status: Status
    list_version: str
    best_match: str | None
    score: float
    source: str | None = None


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
        """The strongest result of ``name``'s readings (``confusables.spellings``)."""
        results = [self._screen_one(spelling) for spelling in spellings(name)]
        return max(results, key=lambda r: (r.status == "potential_match", r.score))

    def _screen_one(self, name: str) -> ScreeningResult:
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
        # One hit per listed name, the strongest over the name's readings.
        by_name: dict[str, ScreeningResult] = {best.best_match: best}
        for spelling in spellings(name):
            for hit in self._hits(spelling):
                found = by_name.get(hit.best_match or "")
                if found is None or hit.score > found.score:
                    by_name[hit.best_match or ""] = hit
        return sorted(by_name.values(), key=lambda r: (-r.score, r.best_match or ""))

    def _hits(self, name: str) -> list[ScreeningResult]:
        """Every listed name this one reading of a name matches at or above the threshold."""
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
        by_name: dict[str, ScreeningResult] = {}
        for index, score in scores.items():
            entry = self.sanctions.entries[index]
            found = by_name.get(entry.name)
            if found is None or round(score, 4) > found.score:
                by_name[entry.name] = ScreeningResult(
                    "potential_match", self.version, entry.name, round(score, 4), entry.source
                )
        return list(by_name.values())


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
