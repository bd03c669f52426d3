"""Numeric settings a compliance outcome depends on are range-checked at start-up:
a value outside its range is exit code 2 naming the variable, never a gateway
that runs with screening, retention or revocation silently switched off."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import serve
from gateway.cli.main import app
from gateway.settings import SettingsError, load_settings

BAD_VALUES = [
    # An exact listed name scores 1.0: above 1 nothing is ever a match; at or
    # below 0 everything is.
    ("SANCTIONS_THRESHOLD", "1.5"),
    ("SANCTIONS_THRESHOLD", "0"),
    ("SANCTIONS_THRESHOLD", "-0.2"),
    ("SANCTIONS_THRESHOLD", "nan"),
    # Retention of 0 or fewer days would prune every record.
    ("AUDIT_RETENTION_DAYS", "0"),
    ("AUDIT_RETENTION_DAYS", "-30"),
    # No checkpoints, or none ever due, leaves deletions undetectable.
    ("AUDIT_CHECKPOINT_EVERY", "0"),
    ("AUDIT_CHECKPOINT_SECONDS", "0"),
    ("AUDIT_CHECKPOINT_SECONDS", "inf"),
    ("AUDIT_BATCH_MAX", "0"),
    ("AUDIT_BATCH_WAIT_MS", "-1"),
    # Revocations and suspensions must reach every replica in bounded time.
    ("CACHE_TTL_SECONDS", "inf"),
    ("CACHE_TTL_SECONDS", "100000"),
    ("CHANGE_POLL_SECONDS", "nan"),
    ("CHANGE_POLL_SECONDS", "100000"),
    # A replay window of days admits replayed and future-dated KYC events.
    ("KYC_WEBHOOK_TOLERANCE_SECONDS", "1000000"),
    ("UPSTREAM_CONNECT_TIMEOUT", "0"),
    ("UPSTREAM_READ_TIMEOUT", "-1"),
    ("UPSTREAM_POOL_SIZE", "0"),
    ("DATABASE_TIMEOUT_SECONDS", "inf"),
    # 0 would refuse every body that is not already there; "never" lets a
    # client that drips its body hold the request open forever.
    ("BODY_READ_TIMEOUT_SECONDS", "0"),
    ("BODY_READ_TIMEOUT_SECONDS", "-1"),
    ("BODY_READ_TIMEOUT_SECONDS", "inf"),
    ("BODY_READ_TIMEOUT_SECONDS", "100000"),
    # A withdrawn signing key verifies tokens until the cached JWKS expires.
    ("OIDC_JWKS_TTL_SECONDS", "0"),
    ("OIDC_JWKS_TTL_SECONDS", "100000"),
    ("OIDC_JWKS_TTL_SECONDS", "inf"),
    # RFC 6052 section 2.2 allows only these NAT64 prefix lengths; an IPv4
    # network or an address that is no network is refused, not ignored.
    ("NAT64_PREFIXES", "2001:db8::/36"),
    ("NAT64_PREFIXES", "10.0.0.0/8"),
    ("NAT64_PREFIXES", "2001:db8:122::/48, nonsense"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_out_of_range_values_are_refused_naming_the_variable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"GATEWAY_{name}", value)
    with pytest.raises(SettingsError) as caught:
        load_settings(demo=True)
    assert f"GATEWAY_{name}:" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("SANCTIONS_THRESHOLD", "1"), ("SANCTIONS_THRESHOLD", "0.75"), ("CACHE_TTL_SECONDS", "0"),
     ("CHANGE_POLL_SECONDS", "0"), ("AUDIT_BATCH_WAIT_MS", "0"), ("AUDIT_RETENTION_DAYS", "1"),
     ("BODY_READ_TIMEOUT_SECONDS", "0.5"), ("BODY_READ_TIMEOUT_SECONDS", "3600"),
     ("OIDC_JWKS_TTL_SECONDS", "1"), ("OIDC_JWKS_TTL_SECONDS", "3600")],
)  # fmt: skip
def test_values_in_range_are_kept(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"GATEWAY_{name}", value)
    settings = load_settings(demo=True)
    assert float(getattr(settings, name.lower())) == float(value)


def test_nat64_prefixes_are_read_as_a_list() -> None:
    settings = load_settings(demo=True, nat64_prefixes="2001:db8:122::/48, 2001:db8:1::/96")
    assert [str(net) for net in settings.nat64_prefixes] == ["2001:db8:122::/48",
                                                             "2001:db8:1::/96"]


def test_shared_prompt_ids_unset_or_empty_check_no_prompt() -> None:
    # Unset (or empty, as a compose file's ${VAR:-} leaves it): prompt ids are
    # forwarded as before; set: only those listed run.
    assert load_settings(demo=True).shared_prompt_ids is None
    assert load_settings(demo=True, shared_prompt_ids=" , ").shared_prompt_ids is None
    listed = load_settings(demo=True, shared_prompt_ids="pmpt_a, pmpt_b").shared_prompt_ids
    assert listed == frozenset({"pmpt_a", "pmpt_b"})


def test_serve_exits_2_on_a_threshold_above_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def started(*_: object) -> None:
        raise AssertionError("serve went on past its settings check")

    # Past the settings check serve would migrate a database and exec a worker
    # in place of this test process: stop it there instead.
    monkeypatch.setattr(serve, "prepare_for_serving", started)
    monkeypatch.setattr(serve, "exec_worker", started)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_SANCTIONS_THRESHOLD", "1.5")
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["serve", "--demo", "--port", "1"])
    assert result.exit_code == 2
    assert "GATEWAY_SANCTIONS_THRESHOLD" in result.output


@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1"])
def test_serve_refuses_a_port_outside_1_to_65535(
    port: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # --port 99999 was taken, logged as ":99999" and bound to 99999 mod 65536.
    def started(*_: object) -> None:
        raise AssertionError("serve went on past its option check")

    monkeypatch.setattr(serve, "prepare_for_serving", started)
    monkeypatch.setattr(serve, "exec_worker", started)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["serve", "--demo", "--port", port])
    assert result.exit_code == 2, (result.output, result.exception)
    said = " ".join(result.output.split())
    bound = "less than or equal to 65535" if int(port) > 0 else "greater than or equal to 1"
    assert "--port" in said and bound in said, said
    assert not (tmp_path / "gateway.db").exists()


@pytest.mark.parametrize("days", ["0", "-1"])
def test_audit_prune_refuses_a_retention_of_less_than_a_day(
    days: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `--days` overrides GATEWAY_AUDIT_RETENTION_DAYS and takes the same range:
    # 0 would put every record past retention.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'none.db'}")
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["audit", "prune", "--dry-run", "--days", days])
    assert result.exit_code == 2
    assert "--days" in result.output


def test_the_jwks_is_cached_for_five_minutes_by_default() -> None:
    assert load_settings(demo=True).oidc_jwks_ttl_seconds == 300


@pytest.mark.parametrize("token", ["admintok", "x" * 31])
def test_a_guessable_bootstrap_token_is_refused(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The admin lockout lets a valid bootstrap token through from a locked-out
    # address (gateway.admin.auth), so the token itself must not be guessable.
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", token)
    with pytest.raises(SettingsError) as caught:
        load_settings(demo=True)
    assert "GATEWAY_ADMIN_TOKEN:" in str(caught.value) and token not in str(caught.value)


@pytest.mark.parametrize(("given", "kept"), [("", None), ("  ", None), ("k" * 32, "k" * 32)])
def test_bootstrap_token_unset_or_long_enough(
    given: str, kept: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", given)
    assert load_settings(demo=True).admin_token == kept
