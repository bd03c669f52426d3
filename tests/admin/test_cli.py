"""The customers/keys/tokens CLI against a real SQLite file (created by the first write)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import customers, keys, tokens
from gateway.cli.main import app as gateway_cli
from tests.support.processes import free_port

runner = CliRunner()


@pytest.fixture(autouse=True)
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("GATEWAY_SANCTIONS_LIST", raising=False)
    return path


def test_customer_lifecycle(database: Path) -> None:
    r = runner.invoke(
        customers.app,
        ["add", "Demo Holdings Ltd", "--id", "org1", "--kind", "organization",
         "--incorporated-in", "SG", "--owner", "CN:60", "--owner", "SG:40",
         "--kyc-level", "kyb_verified", "--tier", "enterprise"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert database.exists() and "org1" in r.output
    assert runner.invoke(customers.app, ["add", "Again", "--id", "org1"]).exit_code == 1
    bad = runner.invoke(customers.app, ["add", "X", "--citizenship", "XX"])
    assert bad.exit_code == 2 and "citizenships[0]" in bad.output
    assert runner.invoke(customers.app, ["add", "X", "--owner", "CN"]).exit_code == 2

    r = runner.invoke(customers.app, ["list"])
    assert r.exit_code == 0 and "Demo Holdings Ltd" in r.output and "enterprise" in r.output
    r = runner.invoke(customers.app, ["show", "org1"])
    assert r.exit_code == 0 and "'CN'" in r.output and "60.0" in r.output
    assert runner.invoke(customers.app, ["show", "nope"]).exit_code == 1

    r = runner.invoke(customers.app, ["suspend", "org1"])
    assert r.exit_code == 0 and "suspended" in r.output
    assert runner.invoke(customers.app, ["suspend", "nope"]).exit_code == 1

    r = runner.invoke(keys.app, ["create", "org1", "--name", "ci"])
    assert r.exit_code == 0, r.output
    match = re.search(r"gk_([0-9a-f]+)_[a-z2-7]{52}", r.output)
    assert match is not None
    assert runner.invoke(keys.app, ["create", "nope"]).exit_code == 1
    assert runner.invoke(keys.app, ["create", "org1", "--expires-at", "tomorrow"]).exit_code == 2
    r = runner.invoke(keys.app, ["revoke", match.group(1)])
    assert r.exit_code == 0 and "revoked" in r.output
    assert runner.invoke(keys.app, ["revoke", "nope"]).exit_code == 1
    # The secret appears only in the create output, never in the database file.
    assert match.group(0).split("_")[2].encode() not in database.read_bytes()


def test_tokens_create() -> None:
    r = runner.invoke(tokens.app, ["create", "--role", "auditor", "--name", "audit-bot"])
    assert r.exit_code == 0 and re.search(r"gat_[0-9a-f]+_[a-z2-7]{52}", r.output), r.output
    assert runner.invoke(tokens.app, ["create", "--role", "root"]).exit_code == 2


DATA = Path(__file__).resolve().parents[1] / "data"


def test_customers_add_screens_against_the_configured_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.ftm.jsonl"))
    r = runner.invoke(customers.app, ["add", "Ostrel Aerotechnics", "--id", "z1"])
    assert r.exit_code == 0, r.output
    assert "potential_match" in r.output
    # A list that cannot be loaded is a usage error naming the variable, not a traceback.
    for broken in (tmp_path / "nonexistent.csv", tmp_path):
        monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(broken))
        r = runner.invoke(customers.app, ["add", "Someone", "--id", "z2"])
        assert r.exit_code == 2, (r.output, r.exception)
        assert "GATEWAY_SANCTIONS_LIST" in r.output and "Traceback" not in r.output, r.output
    monkeypatch.delenv("GATEWAY_SANCTIONS_LIST")
    assert runner.invoke(customers.app, ["show", "z2"]).exit_code == 1  # nothing was written


def test_rescreen_holds_customers_a_list_update_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # Created while the list did not name him: screened clear.
    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.csv"))
    args = ["add", "Halvard Quenneth Brisk", "--id", "h1", "--kyc-level", "kyb_verified"]
    r = runner.invoke(customers.app, [*args, "--tier", "enterprise"])
    assert r.exit_code == 0 and "clear" in r.output, r.output
    assert runner.invoke(customers.app, ["add", "Jane Smith", "--id", "j1"]).exit_code == 0
    # The list is updated and names him: the stored "clear" must not stand.
    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.ftm.jsonl"))
    r = runner.invoke(customers.app, ["rescreen"])
    assert r.exit_code == 0, r.output
    assert "screened 2 customers" in r.output and "1 newly held as potential_match" in r.output
    assert "h1" in r.output and "Halvard Quenneth-Brisk" in r.output, r.output
    shown = runner.invoke(customers.app, ["show", "h1"]).output
    assert "potential_match" in shown, shown
    assert "potential_match" not in runner.invoke(customers.app, ["show", "j1"]).output
    # Run again: nothing new; a miss never clears anyone.
    r = runner.invoke(customers.app, ["rescreen"])
    assert r.exit_code == 0 and "0 newly held" in r.output, r.output
    assert "potential_match" in runner.invoke(customers.app, ["show", "h1"]).output
    # Without a list there is nothing to screen against: a usage error.
    monkeypatch.delenv("GATEWAY_SANCTIONS_LIST")
    r = runner.invoke(customers.app, ["rescreen"])
    assert r.exit_code == 2 and "GATEWAY_SANCTIONS_LIST" in r.output, r.output


def test_rescreen_keeps_a_match_a_review_cleared(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A compliance review cleared the hit (a false positive): running the
    # rescreen after the next list update must not hold the customer again
    # for the same listed name, or every run would undo every review.
    from datetime import UTC, datetime

    from gateway.kyc import service
    from gateway.kyc.schemas import CustomerPatch

    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.ftm.jsonl"))
    r = runner.invoke(customers.app, ["add", "Halvard Quenneth Brisk", "--id", "h2"])
    assert r.exit_code == 0, r.output
    assert "potential_match" in runner.invoke(customers.app, ["show", "h2"]).output

    async def clear(_: object, sessions: customers.Sessions) -> None:
        async with sessions() as session:
            patch = CustomerPatch(sanctions_status="clear")
            await service.update_customer(
                session, "h2", patch, customers.cli_actor(), None, datetime.now(UTC)
            )
            await session.commit()

    customers.run_db(clear)
    r = runner.invoke(customers.app, ["rescreen"])
    assert r.exit_code == 0 and "0 newly held" in r.output, r.output
    assert "potential_match" not in runner.invoke(customers.app, ["show", "h2"]).output
    # Another listed party is a new hit the review did not see: held.
    other = tmp_path / "other.csv"
    other.write_text("name,alt_names,type,source\nHalvard Quennet Brisk,,Individual,SYN\n")
    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(other))
    r = runner.invoke(customers.app, ["rescreen"])
    assert r.exit_code == 0 and "1 newly held" in r.output, r.output
    # Each hit no review cleared is named, and `show` says which is which.
    assert "h2  'Halvard Quenneth Brisk' ~ 'Halvard Quennet Brisk'" in r.output, r.output
    shown = runner.invoke(customers.app, ["show", "h2"]).output
    assert "'listed_name': 'Halvard Quennet Brisk'" in shown and "'reviewed': False" in shown, shown


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"])
def test_out_of_range_times_are_usage_errors(value: str) -> None:
    r = runner.invoke(customers.app, ["add", "T", "--id", "t1", "--kyc-expires-at", value])
    assert r.exit_code == 2, (r.output, r.exception)
    assert "kyc_expires_at" in r.output and "UTC" in r.output
    assert runner.invoke(customers.app, ["add", "T", "--id", "t1"]).exit_code == 0
    r = runner.invoke(keys.app, ["create", "t1", "--expires-at", value])
    assert r.exit_code == 2, (r.output, r.exception)
    assert "--expires-at" in r.output and "UTC" in r.output


def test_audit_export_out_of_range_time_is_a_usage_error(tmp_path: Path) -> None:
    from gateway.cli import audit

    args = ["export", "--from", "9999-12-31T23:59:59-01:00", "--to", "9999-12-31T23:59:59Z"]
    r = runner.invoke(audit.app, [*args, "-o", str(tmp_path / "x")])
    assert r.exit_code == 2, (r.output, r.exception)
    assert "out of range" in r.output


def test_customers_add_checks_names_against_the_policy_bundle(
    monkeypatch: pytest.MonkeyPatch, database: Path
) -> None:
    monkeypatch.setenv("GATEWAY_POLICY_DIR", str(Path(__file__).resolve().parents[2] / "policies"))
    cases = [("--tier", "platinum", "enterprise"),
             ("--kyc-level", "goverment_cleared", "government_cleared")]  # fmt: skip
    for option, bad, allowed in cases:
        r = runner.invoke(customers.app, ["add", "P", "--id", "p1", option, bad])
        assert r.exit_code == 2, (r.output, r.exception)
        assert bad in r.output and allowed in r.output
    assert not database.exists()  # refused before anything was written
    # Without a loadable bundle the CLI says it cannot check, and goes on.
    monkeypatch.setenv("GATEWAY_POLICY_DIR", "/nonexistent-policies")
    r = runner.invoke(customers.app, ["add", "P", "--id", "p1", "--tier", "platinum"])
    assert r.exit_code == 0, r.output
    assert "not checked" in r.output


def test_user_and_validation_text_is_printed_verbatim(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Rich markup must not eat brackets out of messages, names or errors."""
    from gateway.cli import audit, policy

    r = runner.invoke(customers.app, ["add", "Bad", "--kyc-level", "Not A Word"])
    assert r.exit_code == 2 and "'^[a-z][a-z0-9_]{0,63}$'" in r.output, r.output
    name = "[bold]Evil[/bold] [link=x]Corp[/link] :fire:"
    assert runner.invoke(customers.app, ["add", name, "--id", "m1"]).exit_code == 0
    assert name in runner.invoke(customers.app, ["show", "m1"]).output
    assert name in runner.invoke(customers.app, ["list"]).output
    # Policy errors quote the offending regex; configuration errors keep their colour tags out.
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for source in (Path(__file__).resolve().parents[2] / "policies").glob("*.yaml"):
        (bundle / source.name).write_text(source.read_text())
    with (bundle / "capabilities.yaml").open("a") as f:
        f.write("  bracketed: {when: {prompt_matches: ['[a-z][a-z0-9_]{0,3}(']}}\n")
    r = runner.invoke(policy.app, ["validate", str(bundle)])
    assert r.exit_code == 1 and "'[a-z][a-z0-9_]{0,3}('" in r.output, r.output
    monkeypatch.setenv("GATEWAY_AUDIT_IP_TRUNCATE", "bogus")
    r = runner.invoke(audit.app, ["verify"])
    assert r.exit_code == 2 and "GATEWAY_AUDIT_IP_TRUNCATE" in r.output
    assert "[red]" not in r.output and "[/red]" not in r.output, r.output


def test_customers_list_status_must_be_a_known_status() -> None:
    assert runner.invoke(customers.app, ["add", "A", "--id", "a1"]).exit_code == 0
    assert runner.invoke(customers.app, ["suspend", "a1"]).exit_code == 0
    r = runner.invoke(customers.app, ["list", "--status", "bogus"])
    assert r.exit_code == 2, r.output
    assert "bogus" in r.output and "active" in r.output and "suspended" in r.output
    r = runner.invoke(customers.app, ["list", "--status", "suspended"])
    assert r.exit_code == 0 and "a1" in r.output
    r = runner.invoke(customers.app, ["list", "--status", "active"])
    assert r.exit_code == 0 and "a1" not in r.output


def test_commands_on_existing_records_refuse_a_missing_database(database: Path) -> None:
    """A mistyped GATEWAY_DATABASE_URL must not become a new empty database and
    a "not found": commands that read or change existing records can only work
    on an existing file, so a missing one is a usage error naming it, and
    nothing is created."""
    commands = [(customers.app, ["list"]), (customers.app, ["show", "c1"]),
                (customers.app, ["suspend", "c1"]), (customers.app, ["activate", "c1"]),
                (keys.app, ["create", "c1"]), (keys.app, ["revoke", "k1"]),
                (tokens.app, ["list"]), (tokens.app, ["revoke", "t1"])]  # fmt: skip
    for app, args in commands:
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output, r.exception)
        said = _unwrapped(r.output)
        assert str(database) in said and "does not exist" in said, (args, said)
        assert "gateway db upgrade" in said, said
        assert not database.exists(), args


def test_the_first_write_on_a_fresh_machine_creates_the_database_and_says_so(
    database: Path,
) -> None:
    """Bootstrapping before the first `serve` still works (`tokens create`,
    `customers add`), but creating the database is said, with its path, so a
    mistyped one shows at once."""
    r = runner.invoke(tokens.app, ["create", "--role", "admin", "--name", "ops"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert database.is_file()
    said = _unwrapped(r.output)
    assert "created a new database" in said and str(database) in said, said
    r = runner.invoke(customers.app, ["add", "First Customer", "--id", "f1"])
    assert r.exit_code == 0, r.output
    assert "new database" not in r.output  # the file exists now: nothing to say
    assert runner.invoke(customers.app, ["show", "f1"]).exit_code == 0


def test_a_write_into_a_missing_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh file in an existing directory is a bootstrap; a missing
    directory is a typo (`gateway db upgrade` creates both, when meant)."""
    missing = tmp_path / "no-such-dir" / "gateway.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{missing}")
    for app, args in ((tokens.app, ["create", "--role", "admin"]),
                      (customers.app, ["add", "Someone", "--id", "s1"])):  # fmt: skip
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output, r.exception)
        said = _unwrapped(r.output)
        assert str(missing.parent) in said and "gateway db upgrade" in said, said
        assert not missing.parent.exists()


def _unwrapped(output: str) -> str:
    """CLI messages as one line: the console wraps long ones at its width."""
    return " ".join(output.split())


def test_db_upgrade_against_an_unreachable_server_is_one_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = f"postgresql+asyncpg://u:p@127.0.0.1:{free_port()}/gateway"
    result = subprocess.run([sys.executable, "-m", "gateway.cli.main", "db", "upgrade"],
                            cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 1
    assert "GATEWAY_DATABASE_URL: cannot migrate" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_customers_list_keeps_ids_whole_and_speaks_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    long_id = "customer-with-a-rather-long-id-0123456789"
    r = runner.invoke(customers.app, ["add", "Long Id Person", "--id", long_id])
    assert r.exit_code == 0, r.output
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal, or a pipe
    r = runner.invoke(customers.app, ["list"])
    assert r.exit_code == 0 and long_id in r.output, r.output
    r = runner.invoke(customers.app, ["list", "--json"])
    assert r.exit_code == 0, r.output
    page = json.loads(r.output)
    assert page["next_cursor"] is None
    assert [(c["id"], c["name"]) for c in page["items"]] == [(long_id, "Long Id Person")]


def _new_key(customer_id: str) -> tuple[str, str]:
    r = runner.invoke(keys.app, ["create", customer_id])
    assert r.exit_code == 0, r.output
    match = re.search(r"gk_([0-9a-f]+)_([a-z2-7]{52})", r.output)
    assert match is not None, r.output
    return match.group(1), match.group(2)


def test_keys_revoke_takes_the_id_the_prefix_or_the_whole_key_and_never_echoes_a_secret() -> None:
    # Given the whole key, revoke said "key 'gk_…_<secret>' not found", secret
    # and all; given the gk_<id> prefix the admin API shows, also not found.
    assert runner.invoke(customers.app, ["add", "R", "--id", "r1"]).exit_code == 0
    for form in ("{id}", "gk_{id}", "gk_{id}_{secret}", " gk_{id}_{secret}\n"):
        key_id, secret = _new_key("r1")
        r = runner.invoke(keys.app, ["revoke", form.format(id=key_id, secret=secret)])
        assert r.exit_code == 0, (form, r.output)
        assert f"key {key_id} revoked" in r.output and secret not in r.output, r.output
    unknown_id, unknown_secret = "0123456789abcdef", "a" * 52
    r = runner.invoke(keys.app, ["revoke", f"gk_{unknown_id}_{unknown_secret}"])
    assert r.exit_code == 1 and f"key '{unknown_id}' not found" in r.output, r.output
    assert unknown_secret not in r.output
    # Some other credential (an admin token, say) is not taken for a key id, nor echoed.
    r = runner.invoke(keys.app, ["revoke", f"gat_{unknown_id}_{unknown_secret}"])
    assert r.exit_code == 2, r.output
    assert unknown_secret not in r.output and "gk_<id>" in r.output


def test_tokens_list_and_revoke() -> None:
    # The admin API revokes tokens; the CLI could only create them.
    made = {}
    for role, name in (("auditor", "audit-bot"), ("compliance", "kyc-desk")):
        r = runner.invoke(tokens.app, ["create", "--role", role, "--name", name])
        assert r.exit_code == 0, r.output
        match = re.search(r"gat_([0-9a-f]+)_([a-z2-7]{52})", r.output)
        assert match is not None, r.output
        made[name] = (match.group(1), match.group(2))
    r = runner.invoke(tokens.app, ["list"])
    assert r.exit_code == 0, r.output
    for name, (token_id, secret) in made.items():
        assert token_id in r.output and name in r.output and secret not in r.output
    assert "auditor" in r.output and "compliance" in r.output

    bot_id, bot_secret = made["audit-bot"]
    r = runner.invoke(tokens.app, ["revoke", f"gat_{bot_id}_{bot_secret}"])
    assert r.exit_code == 0, r.output
    assert f"token {bot_id} revoked" in r.output and bot_secret not in r.output
    r = runner.invoke(tokens.app, ["list", "--json"])
    assert r.exit_code == 0, r.output
    views = {t["id"]: t for t in json.loads(r.output)["items"]}
    assert views[bot_id]["revoked_at"] is not None and views[bot_id]["role"] == "auditor"
    assert views[made["kyc-desk"][0]]["revoked_at"] is None
    again = runner.invoke(tokens.app, ["revoke", f"gat_{bot_id}"])  # idempotent
    assert again.exit_code == 0 and views[bot_id]["revoked_at"][:19] in again.output, again.output

    r = runner.invoke(tokens.app, ["revoke", "0123456789abcdef"])
    assert r.exit_code == 1 and "token '0123456789abcdef' not found" in r.output, r.output
    r = runner.invoke(tokens.app, ["revoke", "gk_0123456789abcdef_" + "a" * 52])
    assert r.exit_code == 2 and "a" * 52 not in r.output, r.output


def test_customers_activate_undoes_suspend() -> None:
    # The admin API sets status back to "active"; the CLI had only `suspend --undo`.
    assert runner.invoke(customers.app, ["add", "S", "--id", "s1"]).exit_code == 0
    assert runner.invoke(customers.app, ["suspend", "s1"]).exit_code == 0
    r = runner.invoke(customers.app, ["activate", "s1"])
    assert r.exit_code == 0 and "customer s1 is now active" in r.output, r.output
    shown = runner.invoke(customers.app, ["list", "--json"])
    assert [c["status"] for c in json.loads(shown.output)["items"]] == ["active"]
    assert runner.invoke(customers.app, ["activate", "nope"]).exit_code == 1


def _jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_customers_import_loads_a_vendor_export_screening_every_record(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database: Path
) -> None:
    """Onboarding: thousands of customers already verified elsewhere arrive as
    one JSONL file (the record POST /customers takes, one per line)."""
    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.ftm.jsonl"))
    monkeypatch.setenv("GATEWAY_POLICY_DIR", str(Path(__file__).resolve().parents[2] / "policies"))
    file = _jsonl(tmp_path / "customers.jsonl", [
        {"id": "i1", "name": "Ada Lovelace", "citizenships": ["GB"], "residence": "GB",
         "kyc_level": "id_verified", "tier": "research", "attributes": ["academic_affiliation"]},
        "",  # blank lines are skipped
        {"id": "i2", "name": "Ostrel Aerotechnics", "kind": "organization",
         "incorporated_in": "SG", "kyc_level": "kyb_verified", "tier": "enterprise"},
        {"name": "No Id Given", "citizenships": ["FR"]},
    ])  # fmt: skip
    dry = runner.invoke(gateway_cli, ["customers", "import", str(file), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would import 3 customers" in dry.output and "i2" in dry.output, dry.output
    assert runner.invoke(customers.app, ["show", "i1"]).exit_code == 1  # nothing written

    r = runner.invoke(gateway_cli, ["customers", "import", str(file)])
    assert r.exit_code == 0, r.output
    assert "imported 3 customers" in r.output, r.output
    # The sanctions list names i2: held at public until a review clears it.
    assert "1 held as potential_match: i2" in r.output, r.output
    assert "potential_match" in runner.invoke(customers.app, ["show", "i2"]).output
    shown = runner.invoke(customers.app, ["show", "i1"]).output
    assert "research" in shown and "'GB'" in shown, shown
    listed = runner.invoke(customers.app, ["list", "--json"]).output
    assert "No Id Given" in listed

    # Run again: every id exists. Refused whole, naming the lines...
    again = runner.invoke(gateway_cli, ["customers", "import", str(file)])
    assert again.exit_code == 1, again.output
    assert "line 1: customer 'i1' already exists" in again.output, again.output
    assert "line 3: customer 'i2' already exists" in again.output, again.output
    # ...or the existing ones skipped, on request.
    skip = runner.invoke(gateway_cli, ["customers", "import", str(file), "--skip-existing"])
    assert skip.exit_code == 0, skip.output
    assert "imported 1 customers" in skip.output and "skipped 2 existing: i1, i2" in skip.output


def test_customers_import_refuses_a_file_with_any_bad_line_writing_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database: Path
) -> None:
    monkeypatch.setenv("GATEWAY_POLICY_DIR", str(Path(__file__).resolve().parents[2] / "policies"))
    file = _jsonl(tmp_path / "bad.jsonl", [
        {"id": "ok1", "name": "Fine Person", "citizenships": ["DE"]},
        "{not json",
        {"id": "b1", "name": "Bad Country", "citizenships": ["XX"]},
        {"id": "b2", "name": "Bad Tier", "tier": "platinum"},
        {"id": "ok1", "name": "Same Id Twice"},
        ["not", "an", "object"],
        {"id": "b3", "name": "Unknown Field", "nationality": "DE"},
    ])  # fmt: skip
    r = runner.invoke(gateway_cli, ["customers", "import", str(file)])
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert "line 2: not JSON" in out, out
    assert "line 3: citizenships[0]" in out, out
    assert "line 4: tier" in out and "platinum" in out, out
    assert "line 5: id 'ok1' is also on line 1" in out, out
    assert "line 6: not a JSON object" in out, out
    assert "line 7: nationality" in out, out
    assert "nothing was imported" in out, out
    assert runner.invoke(customers.app, ["show", "ok1"]).exit_code in (1, 2)  # never written
    missing = runner.invoke(gateway_cli, ["customers", "import", str(tmp_path / "absent.jsonl")])
    assert missing.exit_code == 2 and "absent.jsonl" in missing.output


def test_keys_create_with_a_scope_and_keys_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_POLICY_DIR", str(Path(__file__).resolve().parents[2] / "policies"))
    assert runner.invoke(customers.app, ["add", "Scoped Co", "--id", "s1"]).exit_code == 0
    r = runner.invoke(keys.app, ["create", "s1", "--name", "ci", "--model", "haiku-lite",
                                 "--capability", "coding"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert runner.invoke(keys.app, ["create", "s1", "--name", "everything"]).exit_code == 0
    # A name the bundle does not define would make a key that never works.
    typo = runner.invoke(keys.app, ["create", "s1", "--model", "haiku-light"])
    assert typo.exit_code == 2 and "--model" in typo.output and "haiku-lite" in typo.output
    listed = runner.invoke(keys.app, ["list", "s1", "--json"])
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.output)["items"]
    assert [(k["name"], k["allowed_models"], k["allowed_capabilities"]) for k in items] == [
        ("ci", ["haiku-lite"], ["coding"]), ("everything", None, None)]
    assert "gk_" not in "".join(str(k.get("key", "")) for k in items)  # never a secret
    table = runner.invoke(keys.app, ["list", "s1"])
    assert table.exit_code == 0 and "haiku-lite" in table.output and "ci" in table.output
    assert runner.invoke(keys.app, ["list", "nobody"]).exit_code == 1


def test_customers_add_and_import_take_ownership_chains_and_name_the_bad_entry(
    tmp_path: Path, database: Path
) -> None:
    lion = {"country": "SG", "percent": 60, "name": "Lion Holdings Pte",
            "ownership": [{"country": "CN", "percent": 100}]}  # fmt: skip
    add = ["add", "Merlion Pte", "--id", "sg1", "--kind", "organization"]
    r = runner.invoke(customers.app, [*add, "--ownership", json.dumps([lion])])
    assert r.exit_code == 0, r.output
    assert "Lion Holdings Pte" in runner.invoke(customers.app, ["show", "sg1"]).output
    bad = [{**lion, "ownership": [{"country": "CN", "percent": 70},
                                  {"country": "CN", "percent": 140}]}]  # fmt: skip
    r = runner.invoke(customers.app, ["add", "X", "--ownership", json.dumps(bad)])
    assert r.exit_code == 2, r.output
    assert "ownership[0].ownership[1].percent" in " ".join(r.output.split()), r.output
    both = runner.invoke(customers.app, ["add", "X", "--owner", "CN:1", "--ownership", "[]"])
    assert both.exit_code == 2, both.output
    r = runner.invoke(customers.app, ["update", "sg1", "--ownership", json.dumps(bad)])
    assert r.exit_code == 2, r.output
    assert "ownership[0].ownership[1].percent" in " ".join(r.output.split()), r.output
    r = runner.invoke(customers.app, ["update", "sg1", "--owner", "SG:100"])
    assert r.exit_code == 0, r.output
    assert "Lion" not in runner.invoke(customers.app, ["show", "sg1"]).output
    assert runner.invoke(customers.app, ["update", "nope", "--owner", "SG:1"]).exit_code == 1

    over = [{**lion, "ownership": [{"country": "CN", "percent": 70},
                                   {"country": "CN", "percent": 40}]}]  # fmt: skip
    file = _jsonl(tmp_path / "chains.jsonl", [
        {"id": "ok2", "name": "Fine Co", "kind": "organization", "ownership": [lion]},
        {"id": "b1", "name": "Over Co", "kind": "organization", "ownership": over},
        {"id": "b2", "name": "Bad Co", "kind": "organization", "ownership": bad},
    ])  # fmt: skip
    r = runner.invoke(gateway_cli, ["customers", "import", str(file)])
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert "line 2: ownership[0].ownership: percentages add up to 110, more than 100" in out, out
    assert "line 3: ownership[0].ownership[1].percent: Input should be less" in out, out


def test_ownership_json_nested_deeper_than_the_parser_recurses_is_a_usage_error(
    database: Path,
) -> None:
    """``--ownership`` is read with ``json.loads``, which recurses per level:
    thousands of levels raised RecursionError, a traceback and not the usage
    error (exit 2) the admin API's 422 and ``customers import`` give."""
    deep = "[" * 5000 + "]" * 5000
    for args in (["add", "Deep Co", "--kind", "organization"], ["update", "sg1"]):
        r = runner.invoke(customers.app, [*args, "--ownership", deep])
        assert r.exit_code == 2, (r.exit_code, repr(r.exception))
        assert "nested too deep" in " ".join(r.output.split()), r.output


def test_withdraw_clearance_holds_the_customer_and_unreviews_its_hits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cleared false positive turns out to be a real match: the officer
    withdraws the clearance from the CLI, with the reason recorded."""
    from datetime import UTC, datetime

    from gateway.kyc import service
    from gateway.kyc.schemas import CustomerPatch

    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.ftm.jsonl"))
    added = runner.invoke(customers.app, ["add", "Halvard Quenneth Brisk", "--id", "h3"])
    assert added.exit_code == 0, added.output

    async def clear(_: object, sessions: customers.Sessions) -> None:
        async with sessions() as session:
            patch = CustomerPatch(sanctions_status="clear")
            await service.update_customer(
                session, "h3", patch, customers.cli_actor(), None, datetime.now(UTC)
            )
            await session.commit()

    customers.run_db(clear)
    assert "'reviewed': True" in runner.invoke(customers.app, ["show", "h3"]).output
    r = runner.invoke(customers.app, ["withdraw-clearance", "h3"])
    assert r.exit_code == 2 and "--reason" in r.output, r.output
    why = "same date of birth as the listed person"
    r = runner.invoke(customers.app, ["withdraw-clearance", "h3", "--reason", why, "--confirmed"])
    assert r.exit_code == 0, r.output
    assert "h3 is now confirmed_match: 1 review withdrawn" in r.output, r.output
    shown = runner.invoke(customers.app, ["show", "h3"]).output
    assert "'reviewed': False" in shown and "confirmed_match" in shown, shown
    r = runner.invoke(customers.app, ["withdraw-clearance", "nope", "--reason", why])
    assert r.exit_code == 1, r.output

    async def withdrawals(_: object, sessions: customers.Sessions) -> list[object]:
        from sqlalchemy import select

        from gateway.identity.tables import AdminAction

        async with sessions() as session:
            query = select(AdminAction.actor, AdminAction.after).where(
                AdminAction.action == "customer.screening_withdraw")  # fmt: skip
            return [tuple(row) for row in await session.execute(query)]

    [(actor, after)] = customers.run_db(withdrawals)
    assert actor == customers.cli_actor().name and after["reason"] == why, after


def test_customers_import_refuses_a_verification_dated_in_the_future(
    tmp_path: Path, database: Path
) -> None:
    """As the admin API does (``test_customer_future_verified.py``): exit 2, the
    line and the field named, nothing imported."""
    future = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    file = _jsonl(tmp_path / "customers.jsonl", [
        {"id": "f1", "name": "Fine Fern", "kyc_verified_at": "2026-01-01T00:00:00Z"},
        {"id": "f2", "name": "Future Fay", "kyc_verified_at": future},
    ])  # fmt: skip
    r = runner.invoke(gateway_cli, ["customers", "import", str(file)])
    assert r.exit_code == 2, r.output
    assert "line 2: kyc_verified_at:" in r.output and "future" in r.output, r.output
    assert "line 1" not in r.output, r.output
    assert not database.exists()  # checked whole before anything is written


def test_rescreen_new_only_screens_those_the_list_is_new_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After loading a list without a restart: only customers screened against
    another list (or threshold) are screened, a run cut short resumes, and the
    summary says how many changed status and where every customer stands."""
    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.csv"))
    for name, cid in (("Halvard Quenneth Brisk", "n1"), ("Jane Smith", "n2")):
        assert runner.invoke(customers.app, ["add", name, "--id", cid]).exit_code == 0
    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.ftm.jsonl"))
    r = runner.invoke(customers.app, ["rescreen", "--new-only"])
    assert r.exit_code == 0, r.output
    assert "screened 2 customers" in r.output and "1 newly held as potential_match" in r.output
    assert "now: 1 clear, 1 potential_match, 0 confirmed_match" in r.output, r.output
    # Each hit names the list it came from: which program listed the party.
    assert "n1  'Halvard Quenneth Brisk' ~ 'Halvard Quenneth-Brisk' (score 1.0, " in r.output
    assert re.search(r"\(score 1\.0, [^)]+\)", r.output), r.output
    r = runner.invoke(customers.app, ["rescreen", "--new-only"])
    assert r.exit_code == 0 and "screened 0 customers" in r.output, r.output
    # A lowered threshold is new to every record: each is screened again.
    monkeypatch.setenv("GATEWAY_SANCTIONS_THRESHOLD", "0.8")
    r = runner.invoke(customers.app, ["rescreen", "--new-only"])
    assert r.exit_code == 0 and "screened 2 customers" in r.output, r.output


def test_list_filters_by_sanctions_status(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a rescreen, the officer's work list: the customers held, as the
    admin API's ``?sanctions_status=`` gives them."""
    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.ftm.jsonl"))
    for name, cid in (("Halvard Quenneth Brisk", "s1"), ("Jane Smith", "s2")):
        assert runner.invoke(customers.app, ["add", name, "--id", cid]).exit_code == 0
    r = runner.invoke(customers.app, ["list", "--sanctions-status", "potential_match", "--json"])
    assert r.exit_code == 0, r.output
    assert [c["id"] for c in json.loads(r.output)["items"]] == ["s1"], r.output
    assert runner.invoke(customers.app, ["list", "--sanctions-status", "maybe"]).exit_code == 2
