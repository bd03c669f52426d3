"""Reading many customer records at once: ``gateway customers import FILE``.

A provider adopting the gateway already holds thousands of verified
customers in its KYC vendor or CRM. One ``customers add`` (or POST) per record
is slow and, worse, stops half-way at the first bad line. An import file is
JSON Lines, one record per line in the shape ``POST /admin/v1/customers``
takes; blank lines are skipped. It is checked whole before anything is
written, and every problem is reported with its line number, as ``policy
validate`` reports file, line and field: a compliance team fixes the file
once, not once per run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from pydantic import ValidationError

from gateway.kyc.schemas import CustomerCreate, validation_problems
from gateway.kyc.verified_at import FIELD as VERIFIED_AT
from gateway.kyc.verified_at import future_verification
from gateway.kyc.vocabulary import Vocabulary, unknown_names


@dataclass(slots=True)
class ImportLine:
    line: int
    record: CustomerCreate


@dataclass(slots=True)
class ImportFile:
    records: list[ImportLine] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """``line N: field: message``, in line order."""


def read_import(
    lines: Iterable[str],
    vocab: Vocabulary | None,
    now: datetime | None = None,
    tolerance_seconds: int = 0,
) -> ImportFile:
    """Parse and validate every line; ``vocab`` checks KYC levels and tiers
    against the policy bundle (None: not checked); with ``now``, a
    ``kyc_verified_at`` later than it (by more than ``tolerance_seconds``)
    is a problem (``gateway.kyc.verified_at``)."""
    out = ImportFile()
    first_line_of: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"line {number}"
        try:
            raw = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            out.problems.append(f"{where}: not JSON ({exc})")
            continue
        if not isinstance(raw, dict):
            out.problems.append(f"{where}: not a JSON object (one customer record per line)")
            continue
        problems: list[str] = []
        try:
            record: CustomerCreate | None = CustomerCreate.model_validate(raw)
        except ValidationError as exc:
            record = None
            problems += _problems(exc)
        if vocab is not None:
            # Checked on the raw values too, so a line with a bad country and
            # a misspelt tier reports both at once.
            names = {k: v for k in ("kyc_level", "tier") if isinstance(v := raw.get(k), str)}
            problems += [f"{u.field}: {u.message}" for u in unknown_names(names, vocab)]
        if record is not None and now is not None:
            future = future_verification(record.kyc_verified_at, now, tolerance_seconds)
            if future is not None:
                problems.append(f"{VERIFIED_AT}: {future}")
        if record is None or problems:
            out.problems.extend(f"{where}: {problem}" for problem in problems)
            continue
        if record.id is not None:
            earlier = first_line_of.setdefault(record.id, number)
            if earlier != number:
                out.problems.append(f"{where}: id {record.id!r} is also on line {earlier}")
                continue
        out.records.append(ImportLine(number, record))
    return out


def _problems(exc: ValidationError) -> list[str]:
    return validation_problems(exc, "record")
