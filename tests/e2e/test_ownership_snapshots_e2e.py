"""Ownership snapshots through the real gateway and the official OpenAI SDK.

A company with the largest ownership tree the admin API takes (256 entries,
long names) made every one of its decision records carry the whole tree:
~140 KB per request, hash-chained and kept for years. Its records now name
the tree by SHA-256 (``facts.principal.ownership_sha256``) and the tree is
stored once; the auditor still reads it with the record, by its digest, and
in an export's manifest, and a replay decides from it."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import openai
import orjson
import pytest

from gateway.policy.replay import from_replay
from tests.e2e.conftest import US_ENTERPRISE, US_IP
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

LONG = "Holdings " + "x" * 480


def _big_tree() -> list[dict[str, object]]:
    """4 entities of 63 owners each: 256 entries, every one with a 489-character name."""
    return [
        {"country": "SG", "percent": 25, "name": f"{LONG} {i}",
         "ownership": [{"country": "US", "percent": 1.5, "name": f"{LONG} {i}.{j}"}
                       for j in range(63)]}
        for i in range(4)
    ]  # fmt: skip


def _ask(gateway: Proc, key: str) -> str:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                           default_headers={"x-forwarded-for": US_IP})  # fmt: skip
    raw = client.chat.completions.with_raw_response.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().choices[0].message.content
    return str(raw.headers["x-gateway-decision-id"])


def _stored_body(db: Path, record_id: str) -> str:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT body FROM audit_records WHERE id = ?", (record_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_a_256_owner_company_s_records_name_its_tree_and_the_tree_is_stored_once(
    gateway: Proc, admin: Admin, tmp_path: Path
) -> None:
    tree = _big_tree()
    created = admin.customer(**{**US_ENTERPRISE, "name": "Big Tree Pte", "residence": "SG",
                                "incorporated_in": "SG", "ownership": tree})  # fmt: skip
    key = admin.key(str(created["id"]))
    ids = [_ask(gateway, key) for _ in range(3)]
    db = tmp_path / "gateway.db"
    sizes = [len(_stored_body(db, i)) for i in ids]
    assert max(sizes) < 4096, sizes  # was ~140 KB each

    record = admin.http.get(f"/admin/v1/decisions/{ids[0]}").json()
    who = record["facts"]["principal"]
    stored_tree = orjson.loads(orjson.dumps(created["ownership"]))
    text = orjson.dumps(stored_tree, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(text).hexdigest()
    assert who["ownership_sha256"] == digest
    assert "ownership" not in who
    assert who["ownership_countries"] == ["SG", "US"]
    # The auditor sees the tree with the record, and by its digest.
    assert record["ownership_snapshot"] == {"sha256": digest, "ownership": stored_tree}
    by_digest = admin.http.get(f"/admin/v1/audit/ownership/{digest}")
    assert by_digest.status_code == 200, by_digest.text
    assert by_digest.content == text
    assert hashlib.sha256(by_digest.content).hexdigest() == digest
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT sha256, body FROM audit_ownership_snapshots").fetchall()
    assert rows == [(digest, text.decode())]

    # A replay decides from the tree the record names.
    who_inlined = {**who, "ownership": stored_tree}
    principal, _ = from_replay({**record["facts"], "principal": who_inlined})
    assert len(principal.ownership) == 4 and len(principal.ownership[0].ownership) == 63


def test_a_refusal_of_a_256_owner_company_explains_itself_in_a_bounded_record(
    gateway: Proc, admin: Admin, tmp_path: Path
) -> None:
    """Its ``ownership_control`` listed one path per controlling owner: 252 paths
    of two 489-character names each, ~255 KB on every refused request. The
    record keeps the share and the first paths, and says how many there are;
    the rest follow from the tree it names and the policy version it names."""
    tree = [{**entity, "ownership": [{**o, "country": "CN"} for o in entity["ownership"]]}
            for entity in _big_tree()]  # type: ignore[dict-item]
    key = admin.customer_with_key(**{**US_ENTERPRISE, "name": "Big Red Tree Pte",
                                     "residence": "SG", "incorporated_in": "SG",
                                     "ownership": tree})  # fmt: skip
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                           default_headers={"x-forwarded-for": US_IP})  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="haiku-lite",
                                       messages=[{"role": "user", "content": "hi"}])
    decision_id = refused.value.response.headers["x-gateway-decision-id"]
    body = _stored_body(tmp_path / "gateway.db", decision_id)
    control = orjson.loads(body)["facts"]["ownership_control"][
        "controlled-by-country-of-concern"]
    assert len(body) < 8192, len(body)  # was ~255 KB
    assert control["share_percent"] == 100.0 and control["paths_total"] == 252
    assert control["paths"][0] == f"{LONG} 0 (SG) 25% <- {LONG} 0.0 (CN) 1.5%"
    assert 1 <= len(control["paths"]) < 252
