"""`gateway audit` commands end to end on a real SQLite file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from gateway.audit.chain import canonical, chain_hash, parse_body
from gateway.audit.signing import Signer, load_signer, public_pem
from gateway.audit.tables import audit_records
from gateway.audit.writer import AuditWriter
from gateway.cli.audit import app
from gateway.db.base import Base
from gateway.db.session import create_engine
from tests.audit.conftest import make_record, make_settings


def _populate(db: Path, n: int) -> None:
    settings = make_settings(db)

    async def run() -> None:
        engine = create_engine(settings)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        writer = AuditWriter(engine, settings, load_signer(settings))
        await writer.start()
        for i in range(n):
            await writer.record(make_record(i))
        await writer.stop()
        await engine.dispose()

    asyncio.run(run())


def _tamper(db: Path) -> None:
    async def run() -> None:
        engine = create_engine(make_settings(db))
        async with engine.begin() as conn:
            await conn.execute(update(audit_records).where(audit_records.c.seq == 7)
                               .values(decision="allow"))
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "gw.db"
    _populate(db, 25)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.delenv("GATEWAY_UPSTREAM_URL", raising=False)
    monkeypatch.delenv("GATEWAY_AUDIT_SIGNING_KEY", raising=False)
    return db


def test_verify_export_public_key(cli_env: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    key = runner.invoke(app, ["public-key"])
    assert key.exit_code == 0 and "BEGIN PUBLIC KEY" in key.stdout
    key_file = tmp_path / "gw.pub"
    key_file.write_text(key.stdout)
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"all.{fmt}"
        exported = runner.invoke(app, ["export", "--format", fmt, "-o", str(out),
                                       "--from", "2000-01-01T00:00:00Z"])
        assert exported.exit_code == 0, exported.output
        checked = runner.invoke(app, ["verify", "--export", str(out),
                                      "--public-key", str(key_file)])
        assert checked.exit_code == 0, checked.output
        assert "25 proven" in checked.output
    _tamper(cli_env)
    broken = runner.invoke(app, ["verify"])
    assert broken.exit_code == 1
    assert "column_mismatch" in broken.output and "seq 7" in broken.output


def test_usage_errors(cli_env: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["verify", "--export", str(tmp_path / "missing")]).exit_code == 2
    assert runner.invoke(app, ["export", "--from", "yesterday"]).exit_code == 2


def _public_key_file(tmp_path: Path) -> Path:
    key = CliRunner().invoke(app, ["public-key"])
    assert key.exit_code == 0, key.output
    path = tmp_path / "gw.pub"
    path.write_text(key.stdout)
    return path


def test_messages_are_printed_verbatim_not_as_markup(
    cli_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CSV saved from the HTTP route has no manifest: the error is readable, with no
    literal markup tags, and a ``[...]`` in the file name is shown as typed."""
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping inside the long tmp path
    key = _public_key_file(tmp_path)
    http_csv = tmp_path / "[bold]http.csv"
    http_csv.write_text("id,kind\n")
    result = CliRunner().invoke(app, ["verify", "--export", str(http_csv),
                                      "--public-key", str(key)])
    assert result.exit_code == 1, result.output
    assert "[red]" not in result.output and "[/red]" not in result.output
    assert f"error: {http_csv}: unreadable export: no manifest" in result.output


def _forge_db(db: Path, forger: Signer) -> None:
    """Rewrite seq 7, re-hash the chain after it, re-sign every checkpoint with the
    forger's key and store that key as the log's only one: consistent throughout."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, body, hash FROM audit_records ORDER BY seq").fetchall()
        hashes: dict[int, str] = {}
        prev = ""
        for seq, body, stored in rows:
            if seq < 7:
                prev = hashes[seq] = stored
                continue
            item = parse_body(body)
            if seq == 7:
                item["customer_id"] = "ghost"
            raw = canonical(item)
            hashes[seq] = chain_hash(prev, raw)
            conn.execute("UPDATE audit_records SET body=?, prev_hash=?, hash=?, customer_id=? "
                         "WHERE seq=?", (raw.decode(), prev, hashes[seq], item["customer_id"], seq))
            prev = hashes[seq]
        conn.execute("UPDATE audit_nodes SET last_hash=?", (prev,))
        link = None
        for cp_id, payload in conn.execute("SELECT id, payload FROM audit_checkpoints "
                                           "ORDER BY seq").fetchall():
            doc = orjson.loads(payload)
            doc["head_hash"] = hashes.get(doc["seq"], doc["head_hash"])  # seq 0: genesis
            if doc.get("prev"):  # each checkpoint names the one before: re-link them too
                doc["prev"]["sha256"] = link
            signed = canonical(doc)
            link = hashlib.sha256(signed).hexdigest()
            conn.execute("UPDATE audit_checkpoints SET payload=?, head_hash=?, signature=?, "
                         "key_fingerprint=? WHERE id=?", (signed.decode(), doc["head_hash"],
                                                          forger.sign(signed), forger.fingerprint,
                                                          cp_id))
        conn.execute("UPDATE audit_keys SET fingerprint=?, public_key=?",
                     (forger.fingerprint, forger.public_b64))


def test_verify_refuses_without_a_pinned_key(cli_env: Path, tmp_path: Path) -> None:
    """No key file beside the DB and no --public-key: a fully re-signed forgery must not
    pass on the strength of the keys the forger stored. Exit 2 says to pin the key."""
    runner = CliRunner()
    key = _public_key_file(tmp_path)
    (cli_env.parent / "audit_signing.key").rename(tmp_path / "elsewhere.key")
    _forge_db(cli_env, Signer.generate())
    refused = runner.invoke(app, ["verify"])
    assert refused.exit_code == 2, refused.output
    assert "no pinned signing key" in refused.output and "--public-key" in refused.output
    pinned = runner.invoke(app, ["verify", "--public-key", str(key)])
    assert pinned.exit_code == 1 and "unknown_key" in pinned.output
    # Explicitly opting in to the stored keys is allowed, and says what it proves.
    stored = runner.invoke(app, ["verify", "--trust-stored-keys"])
    assert stored.exit_code == 0 and "self-consistent" in " ".join(stored.output.split())


def test_verify_export_refuses_the_manifests_own_keys(cli_env: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    key = _public_key_file(tmp_path)
    out = tmp_path / "all.jsonl"
    assert runner.invoke(app, ["export", "-o", str(out)]).exit_code == 0
    # The forger re-signs the manifest's checkpoints and ships their own key in it.
    forger = Signer.generate()
    *records, last = out.read_bytes().splitlines()
    manifest = orjson.loads(last)
    for cp in manifest["nodes"]["test-node"]["checkpoints"]:
        cp.update(signature=forger.sign(cp["payload"].encode()),
                  key_fingerprint=forger.fingerprint)
    manifest["public_keys"] = {forger.fingerprint: public_pem(forger.public_raw)}
    out.write_bytes(b"\n".join([*records, orjson.dumps(manifest)]) + b"\n")
    refused = runner.invoke(app, ["verify", "--export", str(out)])
    assert refused.exit_code == 2, refused.output
    assert "no pinned signing key" in refused.output and "--public-key" in refused.output
    pinned = runner.invoke(app, ["verify", "--export", str(out), "--public-key", str(key)])
    assert pinned.exit_code == 1 and "unknown_key" in pinned.output


def test_export_refuses_what_the_http_route_refuses(
    cli_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backwards range, a bad origin code or a zoneless time is a usage error (exit 2)
    naming the option, not an empty export that looks like an answer."""
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "x.jsonl"
    cases = [
        (["--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"], "'--to'"),
        (["--origin", "USA"], "'--origin'"),
        (["--origin", "XX"], "'--origin'"),  # shaped like a code, but none
        (["--from", "2026-01-01T00:00:00"], "'--from'"),
        (["--to", "1767225600"], "'--to'"),
    ]
    for args, option in cases:
        result = CliRunner().invoke(app, ["export", "-o", str(out), *args])
        assert result.exit_code == 2, (args, result.output)
        assert option in result.output, result.output
        assert not out.exists()


def _gateway(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_DATABASE_URL=db_url, COLUMNS="300")
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", "audit", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_wrong_database_path_creates_nothing_and_is_a_usage_error(tmp_path: Path) -> None:
    typo = tmp_path / "x" / "typo.db"
    for args in (["verify"], ["verify", "--trust-stored-keys"],
                 ["export", "-o", str(tmp_path / "out.jsonl")], ["hold", "list"]):
        result = _gateway(f"sqlite+aiosqlite:///{typo}", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"cannot use the database sqlite+aiosqlite:///{typo}: {typo} does not exist" \
            in result.stderr
        assert "Traceback" not in result.stderr
        assert not typo.parent.exists()
    # A file that is not the gateway's database: a message, not a traceback.
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    result = _gateway(f"sqlite+aiosqlite:///{other}", "verify", "--trust-stored-keys")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "no such table" in result.stderr and "Traceback" not in result.stderr


def test_export_to_a_missing_directory_is_a_usage_error(cli_env: Path, tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.jsonl"
    result = _gateway(f"sqlite+aiosqlite:///{cli_env}", "export", "-o", str(target))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"error: -o {target}: cannot write the export: No such file or directory" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_hold_cli_checks_the_customer_id_and_lists_rfc3339_times(cli_env: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["hold", "add", "--reason", "r", "--customer", "no spaces"])
    assert bad.exit_code == 2 and "'--customer'" in bad.output
    added = runner.invoke(app, ["hold", "add", "--reason", "case 9", "--customer", "c" * 128,
                                "--from", "2026-01-01T00:00:00+02:00"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["hold", "list"])
    assert f"\t{'c' * 128}\t2025-12-31T22:00:00Z\t-\t" in listed.stdout


def test_prune_without_the_signing_key_is_a_usage_error(cli_env: Path, tmp_path: Path) -> None:
    """Prune signs a tombstone with the gateway's key. On a host without it (an
    operator's shell on PostgreSQL, a working directory other than the
    gateway's) it printed a SigningKeyError traceback; now one line, exit 2,
    naming the variable to set, and nothing removed."""
    (cli_env.parent / "audit_signing.key").rename(tmp_path / "elsewhere.key")
    before = sqlite3.connect(cli_env).execute("SELECT count(*) FROM audit_records").fetchone()
    for args in (["prune", "--days", "1"], ["prune", "--days", "1", "--dry-run"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
        assert "GATEWAY_AUDIT_SIGNING_KEY" in result.output, result.output
    after = sqlite3.connect(cli_env).execute("SELECT count(*) FROM audit_records").fetchone()
    assert after == before
