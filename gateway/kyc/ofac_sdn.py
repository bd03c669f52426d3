"""OFAC's Specially Designated Nationals list as OFAC publishes it for download:
``sdn.csv`` with its aliases in ``alt.csv`` beside it (the "legacy" CSV files
of sanctionslist.ofac.treas.gov).

Neither has a header row. ``sdn.csv``: ent_num, SDN_Name, SDN_Type, Program,
Title, Call_Sign, Vess_type, Tonnage, GRT, Vess_flag, Vess_owner, Remarks;
``alt.csv``: ent_num, alt_num, alt_type, alt_name, alt_remarks. An empty field
is ``-0-`` (often with a trailing space) and the files may end with an EOF
byte (0x1A). SDN_Type is ``individual``, ``vessel``, ``aircraft`` or empty
for an entity. The list version covers both files: OFAC changes aliases in
``alt.csv`` alone, and such an update must be a new list to the start-up
rescreen. Without an ``alt.csv`` beside it the primary names are loaded alone.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from gateway.kyc.sanctions_lists import ListedParty, SanctionsList, list_version

SDN_FIELDS = 12
NULL = "-0-"
EOF_BYTE = "\x1a"


def looks_like_sdn(first_row: list[str]) -> bool:
    """A first row of ``sdn.csv``: twelve fields, an entity number first."""
    return len(first_row) == SDN_FIELDS and first_row[0].strip().isdigit()


def _value(field: str) -> str:
    text = field.strip()
    return "" if text == NULL else text


def _rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")  # older downloads are Windows-1252
    rows = csv.reader(io.StringIO(text.replace(EOF_BYTE, "")))
    return [row for row in rows if any(field.strip() for field in row)]


def alt_file(path: Path) -> Path | None:
    """``alt.csv`` (any case) beside ``path``."""
    for sibling in path.parent.iterdir():
        if sibling.name.lower() == "alt.csv" and sibling.is_file():
            return sibling
    return None


def load_ofac_sdn(path: Path) -> SanctionsList:
    alt = alt_file(path)
    aliases: dict[str, list[str]] = {}
    for lineno, row in enumerate(_rows(alt) if alt is not None else [], 1):
        if len(row) < 4:
            raise ValueError(f"{alt}:{lineno}: not an OFAC alt.csv row (ent_num, alt_num, "
                             "alt_type, alt_name, ...)")  # fmt: skip
        name = _value(row[3])
        if name:
            aliases.setdefault(row[0].strip(), []).append(name)
    entries: list[ListedParty] = []
    for lineno, row in enumerate(_rows(path), 1):
        if len(row) < 4 or not row[0].strip().isdigit():
            raise ValueError(f"{path}:{lineno}: not an OFAC sdn.csv row (ent_num, SDN_Name, "
                             "SDN_Type, Program, ...)")  # fmt: skip
        primary = _value(row[1])
        if not primary:
            continue
        kind = _value(row[2]).lower() or "entity"
        program = _value(row[3])
        source = f"OFAC SDN ({program})" if program else "OFAC SDN"
        for name in [primary, *aliases.get(row[0].strip(), ())]:
            entries.append(ListedParty(name, primary, source, kind))
    return SanctionsList(tuple(entries), list_version(path, also=() if alt is None else (alt,)))
