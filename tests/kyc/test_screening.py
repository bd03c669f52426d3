from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gateway.kyc.screening import (
    Screener,
    load_csl_csv,
    load_ftm_jsonl,
    load_list,
    normalize,
    similarity,
)
from tests.kyc.name_pairs import generate

DATA = Path(__file__).resolve().parents[1] / "data"
CSV = DATA / "sanctions_sample.csv"
FTM = DATA / "sanctions_sample.ftm.jsonl"


def test_normalize() -> None:
    assert normalize("Zoltrava Maritime Holdings, L.L.C.") == "holdings maritime zoltrava"
    assert normalize("José  GARCÍA-Müller GmbH") == "garcia jose muller"
    assert normalize("Кветкин Борислав") == "borislav kvetkin"
    assert normalize("LLC") == "llc"  # a name that is only a suffix keeps it


def test_csv_loader_reads_aliases() -> None:
    lst = load_csl_csv(CSV)
    names = {e.name for e in lst.entries}
    assert "Zoltrava Shipping" in names and "KVETKIN, Borislav Andreyevich" in names
    alias = next(e for e in lst.entries if e.name == "Zoltrava Shipping")
    assert alias.primary_name == "Zoltrava Maritime Holdings LLC"
    assert alias.source.startswith("Synthetic Entity List")
    digest, day = lst.version.split("-")
    assert len(digest) == 12 and len(day) == 8


def test_ftm_loader_skips_nameless() -> None:
    lst = load_ftm_jsonl(FTM)
    assert {e.primary_name for e in lst.entries} == {
        "Grigor Vantsenko",
        "Ostrel Aerotechnics JSC",
        "Halvard Quenneth-Brisk",
    }
    assert all(e.source == "synthetic_sanctions" for e in lst.entries)


def test_bad_files(tmp_path: Path) -> None:
    bad_csv = tmp_path / "x.csv"
    bad_csv.write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match="no 'name' column"):
        load_list(bad_csv)
    bad_json = tmp_path / "x.jsonl"
    bad_json.write_text('{"schema": "Person"}\n{oops\n')
    with pytest.raises(ValueError, match=r"x.jsonl:2"):
        load_list(bad_json)


@pytest.mark.parametrize(
    ("name", "listed"),
    [
        ("Borislav Andreevich Kvetkin", "Кветкин Борислав Андреевич"),  # transliterated
        ("Andreyevich Borislav Kvetkin", "KVETKIN, Borislav Andreyevich"),  # reordered
        ("Jusuf Abdelkadir Haranbi", "Yusuf Abdelqadir Haranbi"),
        ("ZOLTRAVA MARITIME HOLDINGS, L.L.C.", "Zoltrava Maritime Holdings LLC"),
        ("Mireille Zanotti Okonkwo", "Mireille Zanotti-Okonkwo"),
    ],
)
def test_sample_finds_variants(name: str, listed: str) -> None:
    result = Screener(load_list(CSV), 0.9).screen(name)
    assert result.status == "potential_match"
    assert result.best_match == listed
    assert result.score >= 0.9


@pytest.mark.parametrize("name", ["Jane Smith", "Acme Robotics Inc", "Borislav Lindqvist"])
def test_sample_does_not_flag_different_names(name: str) -> None:
    result = Screener(load_list(CSV), 0.9).screen(name)
    assert result.status == "clear" and result.score < 0.9


def test_ftm_sample_transliteration() -> None:
    screener = Screener(load_list(FTM), 0.9)
    assert screener.screen("Vantsenko, Grigorii").status == "potential_match"
    assert screener.screen("Ostrel Aerotekhnika AO").best_match == "AO Ostrel Aerotekhnika"


def test_labelled_pairs_precision_recall() -> None:
    pairs = generate()
    assert len(pairs) >= 200 and generate() == pairs  # deterministic
    outcome: Counter[str] = Counter()
    misses: Counter[str] = Counter()
    for pair in pairs:
        hit = similarity(pair.a, pair.b) >= 0.9
        key = ("t" if hit == pair.same else "f") + ("p" if hit else "n")
        outcome[key] += 1
        if hit != pair.same:
            misses[pair.how] += 1
    precision = outcome["tp"] / (outcome["tp"] + outcome["fp"])
    recall = outcome["tp"] / (outcome["tp"] + outcome["fn"])
    print(
        f"\nscreening on {len(pairs)} synthetic pairs: precision={precision:.3f} "
        f"recall={recall:.3f} {dict(outcome)} misses by kind={dict(misses)}"
    )
    assert precision > 0.9 and recall > 0.9


# Synthetic parties whose list entries carry aliases in scripts with no ASCII
# folding (Hangul, Han, Arabic): real lists do (OpenSanctions, CSL alt names).
NON_LATIN_LIST = """\
name,alt_names,type,source
Pak Chol-sung,박철성;朴哲成,Individual,Synthetic SDN List (SYN-SDN)
Haddad Qaswara Trading,شركة حداد قسورة,Entity,Synthetic Entity List (SYN-EL)
"""


@pytest.mark.parametrize(
    ("name", "listed"),
    [
        ("박철성", "박철성"),
        ("朴哲成", "朴哲成"),
        ("شركة حداد قسورة", "شركة حداد قسورة"),
        # Arabic with its vowel marks (harakat) is the same name.
        ("شَرِكة حَدّاد قَسْوَرة", "شركة حداد قسورة"),
    ],
)
def test_names_in_scripts_without_ascii_folding_are_screened(
    tmp_path: Path, name: str, listed: str
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(NON_LATIN_LIST, encoding="utf-8")
    result = Screener(load_list(path), 0.9).screen(name)
    assert (result.status, result.best_match) == ("potential_match", listed), result


def test_a_name_with_nothing_to_compare_is_held_for_review(tmp_path: Path) -> None:
    # Nothing of the name survives normalisation (symbols only): no score can
    # say it is not a listed party, so it is not "clear".
    result = Screener(load_list(CSV), 0.9).screen("★ ☆ ★")
    assert result.status == "potential_match", result
    assert result.best_match is None


def test_non_latin_names_still_differ_from_each_other(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(NON_LATIN_LIST, encoding="utf-8")
    screener = Screener(load_list(path), 0.9)
    assert screener.screen("김민준").status == "clear"
    assert screener.screen("王小明").status == "clear"
    assert screener.screen("Jane Smith").status == "clear"


@pytest.mark.parametrize(
    "name", ["Abdulrahman al Qaradawi", "Abdel Rahman al-Qaradawi", "Abdulrahman Alqaradawi"]
)
def test_arabic_name_particles_written_joined_or_apart_match(tmp_path: Path, name: str) -> None:
    # "Abd al-Rahman", "Abdel Rahman" and "Abdulrahman" are one name written
    # with the particle apart or joined: sorted tokens cannot pair them up.
    path = tmp_path / "list.csv"
    path.write_text(
        "name,alt_names,type,source\n"
        "Abd al-Rahman al-Qaradawi,,Individual,Synthetic SDN List (SYN-SDN)\n",
        encoding="utf-8",
    )
    result = Screener(load_list(path), 0.9).screen(name)
    assert (result.status, result.best_match) == (
        "potential_match",
        "Abd al-Rahman al-Qaradawi",
    ), result


def test_matches_gives_every_listed_name_at_the_threshold(tmp_path: Path) -> None:
    """``screen`` gives the closest listed name; ``matches`` every one a review
    must see: each scorer's hits and each pairing, one per listed name."""
    path = tmp_path / "list.csv"
    path.write_text("name,alt_names,type,source\nBrenholt Ventures,Brenholt Ventures,Entity,A\n"
                    "Brenholt Venturas,,Entity,B\nJane Smith,,Individual,C\n")  # fmt: skip
    screener = Screener(load_csl_csv(path), 0.9)
    found = screener.matches("Brenholt Ventures Ltd")
    assert [(r.best_match, r.score, r.source) for r in found] == [
        ("Brenholt Ventures", 1.0, "A"), ("Brenholt Venturas", 0.9765, "B")
    ]  # fmt: skip
    assert {r.status for r in found} == {"potential_match"}
    assert found[0] == screener.screen("Brenholt Ventures Ltd")
    # A miss is the closest result alone, as ``screen`` gives it.
    assert screener.matches("Harbor Tools") == [screener.screen("Harbor Tools")]
    # The threshold bounds the scan: at 0.98 only the exact name is a hit.
    strict = Screener(load_csl_csv(path), 0.98)
    assert [r.best_match for r in strict.matches("Brenholt Ventures Ltd")] == ["Brenholt Ventures"]
