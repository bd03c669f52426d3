"""Screening names typed with look-alike letters (Cyrillic/Greek drawn as Latin).

Before ``gateway.kyc.confusables``, Cyrillic was read only by its sound (``р``
as r, ``с`` as s, ``Н`` as n), so a listed party's name typed with the
Cyrillic letters that look like its Latin ones, identical on a reviewer's
screen, screened ``clear``.
"""

# ruff: noqa: RUF001, RUF002, RUF003  (look-alike letters on purpose)
from __future__ import annotations

from pathlib import Path

import pytest

from gateway.kyc.screening import Screener, load_list, similarity

CSV = Path(__file__).resolve().parents[1] / "data" / "sanctions_sample.csv"
LISTED = "Velmora Precision Components GmbH"
# Р р е с і ѕ о С are Cyrillic; the rest Latin. On screen: "Velmora Precision Components".
DISGUISED = "Vеlmоrа Рrесіѕіоn Соmроnеntѕ"


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener(load_list(CSV), 0.9)


def test_the_disguise_is_not_latin() -> None:
    assert DISGUISED != "Velmora Precision Components"
    assert any(ord(ch) > 0x7F for ch in DISGUISED)


def test_a_listed_name_typed_with_look_alike_letters_is_a_potential_match(
    screener: Screener,
) -> None:
    result = screener.screen(DISGUISED)
    assert result.status == "potential_match", result
    assert result.best_match == LISTED and result.score >= 0.99, result


def test_every_hit_of_a_disguised_name_is_kept(screener: Screener) -> None:
    hits = screener.matches(DISGUISED)
    assert [h.best_match for h in hits if h.status == "potential_match"] == [LISTED], hits


def test_similarity_reads_look_alikes_by_shape() -> None:
    assert similarity(DISGUISED, LISTED) >= 0.99
    # Greek capitals and Cyrillic small letters, mixed within one word.
    assert similarity("Ηарру Сурrеss Ехроrt", "Happy Cypress Export") >= 0.99


def test_genuine_cyrillic_names_keep_their_phonetic_reading(screener: Screener) -> None:
    # A listed alias in Cyrillic, and its romanisation, match as before.
    assert screener.screen("Кветкин Борислав").status == "potential_match"
    assert similarity("Иван Петров", "Ivan Petrov") == 1.0
    # Words with letters of their own script are not read as Latin.
    assert screener.screen("Иван Петров").status == "clear"


def test_digits_written_for_letters_inside_a_word(screener: Screener) -> None:
    # Before: clear at 0.8667.
    result = screener.screen("Ve1m0ra Prec1s10n C0mp0nents")
    assert result.status == "potential_match" and result.best_match == LISTED, result
    # A number is no word: it is not read as letters.
    from gateway.kyc.confusables import visual_spelling

    assert visual_spelling("Unit 1010, 2001 Trading") is None
