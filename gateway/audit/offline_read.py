"""Reading an export for offline verification: its manifest, and its records
with the bytes their hashes cover.

A JSONL export is read line by line up to its manifest (its last line); a CSV
export's ``record`` column is the hashed record, and every readable column
beside it must be what the export derives from that record. Each line read
goes into the file digest that the manifest's ``data_sha256`` must match.

Separate from ``offline.py``, which judges what is read (chains, checkpoints,
manifest figures): the CLI's ``audit policy --export`` and ``audit ownership
--export`` and ``ownership_snapshots`` read a manifest without verifying it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from gateway.audit.chain import CHAIN_FIELDS, canonical, parse_body
from gateway.audit.export import CSV_LAYOUTS, csv_cells, csv_line
from gateway.audit.problems import Problem

csv.field_size_limit(1 << 30)


def _last_line(path: Path) -> bytes:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        block = 1 << 16
        pos, tail = size, b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            tail = fh.read(step) + tail
            stripped = tail.rstrip(b"\n")
            if b"\n" in stripped:
                return stripped.rsplit(b"\n", 1)[1]
        return tail.rstrip(b"\n")


def read_records(path: Path, fmt: str, digest: Any,
             problems: list[Problem]) -> Iterator[tuple[int, dict[str, Any], bytes]]:
    """(line number, chain fields + parsed body, canonical body bytes) per record."""
    if fmt == "jsonl":
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                item = orjson.loads(line)
                if item.get("kind") == "manifest":
                    return
                digest.update(line)
                yield lineno, item, canonical({k: v for k, v in item.items()
                                               if k not in CHAIN_FIELDS})
        return
    with path.open("r", encoding="utf-8", newline="") as fh:
        digest.update(fh.readline().encode("utf-8"))  # the header, as exported
        fh.seek(0)
        reader = csv.reader(fh)
        columns = tuple(next(reader, []))
        if columns not in CSV_LAYOUTS:
            # Cells are compared by position with the export's own column list; a
            # renamed or moved column would put one field's value under another's name.
            # The layout from before report mode is still the export's own (archives).
            problems.append(Problem("column_mismatch", "line 1: the header is not the "
                                    "export's column list (columns renamed, moved, added or "
                                    "removed)"))
            return
        for lineno, row in enumerate(reader, 2):
            digest.update(csv_line(row))
            if len(row) != len(columns):
                problems.append(Problem("column_mismatch", f"line {lineno}: {len(row)} cells, "
                                        f"the header has {len(columns)}"))
                continue
            *shown, prev_hash, stored, record = row
            body = record.encode("utf-8")
            item = parse_body(body)
            item["prev_hash"], item["hash"] = prev_hash, stored
            # Only ``record`` is hashed; the readable cells are what an auditor reads,
            # so each must be exactly what the export derives from the hashed record.
            differ = [name for name, cell, want, before in zip(
                          columns, shown, csv_cells(item, columns),
                          csv_cells(item, columns, as_text=False), strict=False)
                      # ``before``: an archive exported before formulas were escaped.
                      if cell not in (want, before)]
            if differ:
                problems.append(Problem(
                    "column_mismatch", f"line {lineno}: column{'s' if len(differ) > 1 else ''} "
                    f"{', '.join(repr(d) for d in differ)} differ from the hashed record "
                    "(edited)", str(item.get("node_id")), _int(item.get("seq")),
                    item.get("id")))
            yield lineno, item, body


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def load_manifest(path: Path, manifest_path: Path | None) -> tuple[str, dict[str, Any]]:
    fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    if manifest_path is None and fmt == "csv":
        manifest_path = path.with_name(path.name + ".manifest.json")
    if manifest_path is not None:
        if not manifest_path.is_file():
            # The usual cause: a CSV saved from the HTTP route, which streams no sidecar.
            raise ValueError(f"no manifest {manifest_path} (CSV from the HTTP API has none: "
                             "export JSONL, or use `gateway audit export --format csv -o FILE`)")
        return fmt, dict(orjson.loads(manifest_path.read_bytes()))
    doc = orjson.loads(_last_line(path))
    if not isinstance(doc, dict) or doc.get("kind") != "manifest":
        raise ValueError(f"{path}: the last line is not a manifest")
    return fmt, doc
