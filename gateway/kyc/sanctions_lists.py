"""Sanctions lists as loaded from a file: the US Consolidated Screening List
CSV export, OFAC's SDN ``sdn.csv`` (with ``alt.csv``: ``ofac_sdn.py``), or
OpenSanctions FollowTheMoney JSON lines; each primary name and each alias is
an entry.

The list version recorded with each result is ``<sha256 prefix>-<YYYYMMDD>``
of the file, so a reviewer can tell which list a result came from.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ListedParty:
    name: str
    """The listed name (primary or alias) this entry matches on."""
    primary_name: str
    source: str
    entity_type: str


@dataclass(frozen=True, slots=True)
class SanctionsList:
    entries: tuple[ListedParty, ...]
    version: str


def list_version(path: Path, when: datetime | None = None, also: tuple[Path, ...] = ()) -> str:
    """``also``: files the list is read from besides ``path`` (OFAC's alt.csv)."""
    hasher = hashlib.sha256(path.read_bytes())
    for other in also:
        hasher.update(other.read_bytes())
    digest = hasher.hexdigest()[:12]
    day = (when or datetime.fromtimestamp(path.stat().st_mtime, UTC)).strftime("%Y%m%d")
    return f"{digest}-{day}"


def same_list(version: str | None, other: str) -> bool:
    """Are two list versions the same content? The date part is the file's,
    and the same list downloaded again another day differs only there."""
    return version is not None and content_digest(version) == content_digest(other)


def content_digest(version: str) -> str:
    """The content part of a list version (``<sha256 prefix>-<YYYYMMDD>``)."""
    return version.split("-", 1)[0]


def load_csl_csv(path: Path) -> SanctionsList:
    """US Consolidated Screening List CSV: ``name``, ``alt_names`` (``;``), ``type``, ``source``."""
    entries: list[ListedParty] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is not None and "name" not in reader.fieldnames:
            from gateway.kyc.ofac_sdn import load_ofac_sdn, looks_like_sdn

            if looks_like_sdn(list(reader.fieldnames)):  # OFAC's own sdn.csv: no header
                return load_ofac_sdn(path)
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
