"""OFAC's own SDN list download (``sdn.csv``, no header row, ``-0-`` for an
empty field, aliases in ``alt.csv`` beside it) loads as a sanctions list: it
was refused ("no 'name' column"), so a compliance officer could not put the
list OFAC publishes in force without converting it."""

from __future__ import annotations

from pathlib import Path

from gateway.kyc.sanctions_lists import load_list
from gateway.kyc.screening import load_screener

# As OFAC publishes them: no header, "-0- " for nothing, a trailing EOF byte.
SDN = (
    '36,"AEROCARIBBEAN AIRLINES",-0- ,"CUBA",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n'
    '2674,"HARANBI, Yusuf Abdelqadir","individual","SDGT",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,'
    '"DOB 1970."\r\n'
    '9001,"NORDIC STAR","vessel","IRAN",-0- ,"9HXX9","Crude Oil Tanker",-0- ,-0- ,'
    '"Malta",-0- ,-0- \r\n'
    "\x1a"
)
ALT = (
    '36,12,"aka","AERO-CARIBBEAN",-0- \r\n'
    '2674,4410,"aka","HARANBEE, Yousuf",-0- \r\n'
    "\x1a"
)


def _files(tmp_path: Path, alt: str = ALT) -> Path:
    (tmp_path / "alt.csv").write_text(alt, encoding="ascii")
    sdn = tmp_path / "sdn.csv"
    sdn.write_text(SDN, encoding="ascii")
    return sdn


def test_ofac_sdn_csv_loads_with_its_aliases(tmp_path: Path) -> None:
    listed = load_list(_files(tmp_path))
    names = {(e.name, e.primary_name, e.entity_type) for e in listed.entries}
    assert names == {
        ("AEROCARIBBEAN AIRLINES", "AEROCARIBBEAN AIRLINES", "entity"),
        ("AERO-CARIBBEAN", "AEROCARIBBEAN AIRLINES", "entity"),
        ("HARANBI, Yusuf Abdelqadir", "HARANBI, Yusuf Abdelqadir", "individual"),
        ("HARANBEE, Yousuf", "HARANBI, Yusuf Abdelqadir", "individual"),
        ("NORDIC STAR", "NORDIC STAR", "vessel"),
    }, names
    assert {e.source for e in listed.entries} == {"OFAC SDN (CUBA)", "OFAC SDN (SDGT)",
                                                  "OFAC SDN (IRAN)"}  # fmt: skip
    screener = load_screener(tmp_path / "sdn.csv", 0.9)
    assert screener is not None
    hit = screener.screen("Yousuf Haranbee")
    assert hit.status == "potential_match" and hit.source == "OFAC SDN (SDGT)", hit


def test_an_alias_update_is_a_new_list_version(tmp_path: Path) -> None:
    """OFAC updates alt.csv on its own: a new alias must make a new version,
    or the start-up rescreen would not see the list as new."""
    before = load_list(_files(tmp_path)).version
    added = ALT.replace("\x1a", '173,99,"aka","ZOLTRAVA SHIPPING",-0- \r\n\x1a')
    assert load_list(_files(tmp_path, added)).version != before


def test_sdn_csv_without_alt_csv_loads_primary_names(tmp_path: Path) -> None:
    sdn = tmp_path / "sdn.csv"
    sdn.write_text(SDN, encoding="ascii")
    assert len(load_list(sdn).entries) == 3
