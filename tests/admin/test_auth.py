from __future__ import annotations

import pytest

from gateway.admin.auth import admin_authenticator
from gateway.identity import secrets as creds
from tests.admin.conftest import BOOTSTRAP, AdminEnv

URL = "/admin/v1/customers"


async def test_bootstrap_and_created_tokens(env: AdminEnv) -> None:
    r = await env.client.post(
        "/admin/v1/tokens",
        json={"role": "compliance", "name": "alice"},
        headers=env.auth("bootstrap"),
    )
    assert r.status_code == 201
    token = r.json()["token"]
    assert token.startswith(f"gat_{r.json()['id']}_") and r.json()["role"] == "compliance"
    hdr = {"authorization": f"Bearer {token}"}
    assert (await env.client.get("/admin/v1/customers", headers=hdr)).status_code == 200
    assert (await env.client.post("/admin/v1/tokens", json={"role": "admin", "name": "x"},
                                  headers=hdr)).status_code == 403  # fmt: skip
    r = await env.client.post(
        "/admin/v1/tokens", json={"role": "root", "name": "x"}, headers=env.auth("admin")
    )
    assert r.status_code == 422
    # Revocation takes effect at once on this replica.
    token_id = token.split("_")[1]
    r = await env.client.delete(f"/admin/v1/tokens/{token_id}", headers=env.auth("admin"))
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert (await env.client.get("/admin/v1/customers", headers=hdr)).status_code == 401


async def test_wrong_secret_for_known_id(env: AdminEnv) -> None:
    token = env.tokens["admin"]
    forged = token[:-1] + ("b" if token[-1] == "a" else "a")
    r = await env.client.get("/admin/v1/customers", headers={"authorization": f"Bearer {forged}"})
    assert r.status_code == 401


async def test_the_limiter_is_built_on_the_first_failure(env: AdminEnv) -> None:
    # A worker that only ever sees good tokens never imports ``limits``.
    for _ in range(3):
        ok = await env.client.get("/admin/v1/customers", headers=env.auth("admin"))
        assert ok.status_code == 200
    auth = admin_authenticator(env.services)  # type: ignore[arg-type]
    assert auth.lockout._local is None
    bad = {"authorization": "Bearer gat_guess_guess"}
    assert (await env.client.get("/admin/v1/customers", headers=bad)).status_code == 401
    assert auth.lockout._local is not None


async def _lock_out(env: AdminEnv) -> None:
    bad = {"authorization": "Bearer gat_guess_guess"}
    for _ in range(20):
        assert (await env.client.get(URL, headers=bad)).status_code == 401
    r = await env.client.get(URL, headers=bad)
    assert r.status_code == 429 and r.headers["retry-after"]


async def test_failed_attempts_rate_limited_per_ip(env: AdminEnv) -> None:
    # The admin token is used once before the lockout: this process has seen it succeed.
    assert (await env.client.get(URL, headers=env.auth("admin"))).status_code == 200
    await _lock_out(env)
    # Guesses stay refused, a right-looking one as much as a wrong one...
    forged = env.tokens["admin"][:-1] + ("b" if env.tokens["admin"][-1] == "a" else "a")
    for value in ("wrong", forged, BOOTSTRAP[:-1], BOOTSTRAP + "x"):
        r = await env.client.get(URL, headers={"authorization": f"Bearer {value}"})
        assert r.status_code == 429, value
    # ...while the holders of valid credentials are not locked out by them: the
    # bootstrap token and a token already proven here still work.
    assert (await env.client.get(URL, headers=env.auth("bootstrap"))).status_code == 200
    assert (await env.client.get(URL, headers=env.auth("admin"))).status_code == 200
    # A known token without the role is still 403, not 429.
    r = await env.client.post("/admin/v1/tokens", json={"role": "admin", "name": "x"},
                              headers=env.auth("auditor"))  # fmt: skip
    assert r.status_code == 429  # the auditor token was never seen here: not checked
    # Successes do not count: a fresh authenticator (another window) lets anything through.
    env.services.extras.pop("admin_auth")
    r = await env.client.post("/admin/v1/tokens", json={"role": "admin", "name": "x"},
                              headers=env.auth("auditor"))  # fmt: skip
    assert r.status_code == 403
    assert admin_authenticator(env.services) is env.services.extras["admin_auth"]  # type: ignore[arg-type]


async def test_guesses_from_a_locked_address_are_not_checked(
    env: AdminEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await env.client.get(URL, headers=env.auth("admin"))).status_code == 200
    await _lock_out(env)
    auth = admin_authenticator(env.services)  # type: ignore[arg-type]
    lookups: list[str] = []
    hashed: list[str] = []
    real_lookup = auth._lookup
    real_hash = creds.hash_secret

    async def lookup(token_id: str) -> object:
        lookups.append(token_id)
        return await real_lookup(token_id)

    def hash_secret(salt: str, secret: str) -> str:
        hashed.append(secret)
        return real_hash(salt, secret)

    monkeypatch.setattr(auth, "_lookup", lookup)
    monkeypatch.setattr(creds, "hash_secret", hash_secret)
    admin_id = env.tokens["admin"].split("_")[1]
    guesses = [f"gat_{i:016x}_{'a' * 52}" for i in range(30)]
    guesses += [f"gat_{admin_id}_{'b' * 52}", BOOTSTRAP.upper(), "x" * 200]
    for guess in guesses:
        r = await env.client.get(URL, headers={"authorization": f"Bearer {guess}"})
        assert r.status_code == 429, guess
    # No database read, no secret hashed: nothing an attacker could time, and no
    # load on the store whatever the rate of guesses.
    assert lookups == [] and hashed == []
    # A proven credential is checked as usual (against the cache).
    assert (await env.client.get(URL, headers=env.auth("admin"))).status_code == 200
    assert hashed


async def test_a_revoked_token_is_not_let_through_a_lockout(env: AdminEnv) -> None:
    r = await env.client.post("/admin/v1/tokens", json={"role": "compliance", "name": "carol"},
                              headers=env.auth("bootstrap"))  # fmt: skip
    token, token_id = r.json()["token"], r.json()["id"]
    hdr = {"authorization": f"Bearer {token}"}
    assert (await env.client.get(URL, headers=hdr)).status_code == 200
    await _lock_out(env)
    assert (await env.client.get(URL, headers=hdr)).status_code == 200
    r = await env.client.delete(f"/admin/v1/tokens/{token_id}", headers=env.auth("bootstrap"))
    assert r.status_code == 200
    assert (await env.client.get(URL, headers=hdr)).status_code == 429


async def test_unknown_ids_cost_what_known_ones_do(
    env: AdminEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the lockout: a guess for an id that does not exist hashes its
    # secret as one for an existing id does, so timing does not tell which
    # token ids exist.
    hashed: list[str] = []
    real_hash = creds.hash_secret

    def hash_secret(salt: str, secret: str) -> str:
        hashed.append(secret)
        return real_hash(salt, secret)

    monkeypatch.setattr(creds, "hash_secret", hash_secret)
    admin_id = env.tokens["admin"].split("_")[1]
    for token_id in (admin_id, "0123456789abcdef"):
        hashed.clear()
        r = await env.client.get(URL, headers={"authorization": f"Bearer gat_{token_id}_x"})
        assert r.status_code == 401 and hashed == ["x"], token_id


def test_the_client_address_reads_every_forwarded_for_line() -> None:
    # The admin lockout counts failures per client address. A client whose
    # proxy adds its own X-Forwarded-For line (instead of appending) must not
    # choose that address with a line of its own, and so escape the lockout.
    from ipaddress import ip_network
    from types import SimpleNamespace

    from starlette.requests import Request

    from gateway.admin.auth import client_ip
    from gateway.geo.locate import IPLocator, iptocc_lookup

    locator = IPLocator(iptocc_lookup, [ip_network("127.0.0.0/8")])
    request = Request({
        "type": "http", "method": "GET", "path": "/admin/v1/customers", "query_string": b"",
        "client": ("127.0.0.1", 5000),
        "headers": [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-for", b"8.8.8.8")],
    })
    assert client_ip(request, SimpleNamespace(locator=locator)) == "8.8.8.8"  # type: ignore[arg-type]


async def test_a_401_says_what_is_wrong_with_the_header(env: AdminEnv) -> None:
    cases = [
        ("Basic dXNlcjpwYXNz", "unsupported authorization scheme 'Basic'"),
        ("Bearer ", "empty bearer token"),
        (None, "missing or invalid admin token"),
        ("Bearer gat_guess_guess", "missing or invalid admin token"),
    ]
    for header, said in cases:
        headers = {} if header is None else {"authorization": header}
        r = await env.client.get(URL, headers=headers)
        assert r.status_code == 401 and said in r.json()["detail"], (header, r.text)


async def test_tokens_are_listed_for_admins_without_their_secrets(env: AdminEnv) -> None:
    """An admin auditing who can reach the admin API lists the tokens over HTTP,
    as ``gateway tokens list`` does on the database: ids, roles, names,
    revocation times, never a secret, salt or hash."""
    made = await env.client.post("/admin/v1/tokens", json={"role": "auditor", "name": "ext-audit"},
                                 headers=env.auth("admin"))  # fmt: skip
    assert made.status_code == 201
    token_id, secret = made.json()["id"], made.json()["token"].split("_")[2]
    await env.client.delete(f"/admin/v1/tokens/{token_id}", headers=env.auth("admin"))
    r = await env.client.get("/admin/v1/tokens", headers=env.auth("admin"))
    assert r.status_code == 200, r.text
    listed = {row["id"]: row for row in r.json()["items"]}
    assert listed[token_id]["role"] == "auditor" and listed[token_id]["name"] == "ext-audit"
    assert listed[token_id]["revoked_at"].endswith("Z")
    assert set(listed[token_id]) == {"id", "role", "name", "created_at", "revoked_at"}
    assert secret not in r.text
    for other in ("compliance", "auditor"):
        denied = await env.client.get("/admin/v1/tokens", headers=env.auth(other))
        assert denied.status_code == 403, (other, denied.text)
