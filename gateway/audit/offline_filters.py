"""A filtered export's records against the filters its manifest declares.

The manifest is not signed. A filtered export expects seq gaps and has no
unsigned tail to judge, so relabelling a full export ``"mode": "filtered"``
would let its holder delete records unnoticed. Two checks close that: a
filtered export must name at least one content filter (an export without one
is full, by ``DecisionFilters.narrows``), and every record must satisfy every
declared filter, by the same rules the database query applies
(``query.decisions_query``). A relabelled file then either fails, or reads as
exactly the selection it claims to be, which an auditor who asked for a full
export does not accept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from gateway.audit.chain import column_text
from gateway.audit.problems import Problem

_COLUMN_CHARS = 128
"""``customer_id`` and ``model`` filters match the query column, cut at 128 (chain.column_text)."""

CONTENT_FILTERS = ("customer_id", "decision", "rule_id", "report_rule_id", "model", "origin",
                   "citizenship")


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _origin_is(record: Mapping[str, Any], want: str) -> bool:
    if "-" in want:  # an ISO 3166-2 region; the query matches its country column too
        return bool(record.get("origin_country") == want[:2]
                    and record.get("origin_region") == want)
    return record.get("origin_country") == want


def _list_has(record: Mapping[str, Any], key: str, want: str) -> bool:
    value = record.get(key)
    return isinstance(value, list) and want in value


_Test = Callable[[Mapping[str, Any], Any], bool]

_TESTS: dict[str, tuple[str, _Test]] = {
    "customer_id": ("customer_id", lambda r, v: column_text(r.get("customer_id"),
                                                            _COLUMN_CHARS) == v),
    "decision": ("decision", lambda r, v: r.get("decision") == v),
    "rule_id": ("rule_ids", lambda r, v: _list_has(r, "rule_ids", v)),
    "report_rule_id": ("report_rule_ids", lambda r, v: _list_has(r, "report_rule_ids", v)),
    "model": ("model", lambda r, v: column_text(r.get("model"), _COLUMN_CHARS) == v),
    "origin": ("origin", lambda r, v: _origin_is(r, str(v))),
    "citizenship": ("citizenships", lambda r, v: _list_has(r, "citizenships", v)),
}
"""Per manifest filter key: the record field it reads and whether a record matches."""


class FilterCheck:
    """Checks each record of a filtered export against the manifest's ``filters``."""

    def __init__(self, mode: str, filters: Mapping[str, Any]) -> None:
        self.active = mode == "filtered"
        self.filters = dict(filters)
        self.problems: list[Problem] = []
        if mode not in ("full", "filtered"):
            # Gaps and the unsigned tail are judged for "full" only: another word
            # in the unsigned manifest must not switch those checks off.
            self.problems.append(Problem(
                "filter_mismatch", f"the manifest names mode {mode!r}, neither 'full' nor "
                "'filtered': the manifest was altered"))
        if self.active and not any(self.filters.get(k) is not None for k in CONTENT_FILTERS):
            self.problems.append(Problem(
                "filter_mismatch", "the manifest says the export is filtered but names no "
                "content filter (customer, decision, rule, model, origin, citizenship): an "
                "export without one is full, and is verified as such (gaps, unsigned tail); "
                "the manifest was altered"))
        self._from = _time(self.filters["from_ts"]) if "from_ts" in self.filters else None
        self._to = _time(self.filters["to_ts"]) if "to_ts" in self.filters else None

    def check(self, lineno: int, item: Mapping[str, Any]) -> None:
        if not self.active:
            return
        where = (str(item.get("node_id")), item.get("seq") if isinstance(item.get("seq"), int)
                 else None, item.get("id"))
        wrong = self._mismatch(item)
        if wrong is not None:
            self.problems.append(Problem("filter_mismatch", f"line {lineno}: {wrong}: the "
                                         "record is not in the selection the manifest "
                                         "declares (records were swapped or the manifest "
                                         "altered)", *where))

    def _mismatch(self, item: Mapping[str, Any]) -> str | None:
        if item.get("kind") != "decision":
            return f"a {item.get('kind')!r} record, a filtered export holds decisions only"
        for key, (field, test) in _TESTS.items():
            want = self.filters.get(key)
            if want is not None and not test(item, want):
                return (f"{field} is {item.get(field)!r}, the manifest's filter says "
                        f"{want!r}")
        ts = _time(item.get("ts"))
        if (self._from or self._to) and ts is None:
            return f"ts {item.get('ts')!r} is not a time"
        if ts is not None and self._from is not None and ts < self._from:
            return f"ts {item.get('ts')} is before the filter's from ({self.filters['from_ts']})"
        if ts is not None and self._to is not None and ts >= self._to:
            return (f"ts {item.get('ts')} is not before the filter's to "
                    f"({self.filters['to_ts']}, exclusive)")
        return None
